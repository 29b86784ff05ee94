use cachette::cached;

#[cached(store = "redis")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
