use cachette::cached;

#[cached(tll = 60, ttl = 0, capacity = 10, capacity = 20)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
