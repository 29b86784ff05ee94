use cachette::cached;

#[cached(ttl = "5m", store = "redis", l1_ttl = "30s")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
