use cachette::cached;

#[cached(ttl = 60, key = "user:{id}")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
