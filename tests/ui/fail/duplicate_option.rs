use cachette::cached;

#[cached(ttl = 60, ttl = 120)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
