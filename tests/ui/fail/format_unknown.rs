use cachette::cached;

#[cached(ttl = 60, store = "redis", format = "xml")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
