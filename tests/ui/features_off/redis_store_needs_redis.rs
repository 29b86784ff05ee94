use cachette::cached;

#[cached(ttl = 60, store = "redis")]
async fn shared(id: u64) -> u64 {
    id
}

#[cached(ttl = 60, store = "tiered")]
async fn tiered(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
