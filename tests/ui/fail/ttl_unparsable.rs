use cachette::cached;

#[cached(ttl = "5 minutes")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
