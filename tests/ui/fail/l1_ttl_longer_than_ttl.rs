use cachette::cached;

#[cached(ttl = "1m", store = "tiered", l1_ttl = "5m")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
