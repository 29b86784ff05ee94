use cachette::cached;

#[cached(store = "tiered")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
