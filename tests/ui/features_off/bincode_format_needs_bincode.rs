use cachette::cached;

#[cached(ttl = 60, store = "redis", format = "bincode")]
async fn shared(id: u64) -> u64 {
    id
}

fn main() {}
