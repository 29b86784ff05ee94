use cachette::cached;

#[cached(ttl = 60, store = "redis", key = "user:{id}")]
async fn page(id: u64, page: u32) -> String {
    format!("{id}:{page}")
}

fn main() {}
