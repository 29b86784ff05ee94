use cachette::cached;

#[cached(ttl = 60, store = "redis", key = "user:{id}:{user_id}")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
