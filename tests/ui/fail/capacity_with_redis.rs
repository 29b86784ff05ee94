use cachette::cached;

#[cached(ttl = 60, store = "redis", capacity = 1_000)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
