use cachette::cached;

#[cached(ttl = 60, store = "redis", key = "u:{a}{b}")]
async fn get(a: u64, b: u64) -> u64 {
    a + b
}

fn main() {}
