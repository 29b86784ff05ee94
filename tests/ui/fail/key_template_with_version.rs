use cachette::cached;

#[cached(ttl = 60, store = "redis", key = "user:{id}", version = 2)]
async fn user(id: u64) -> String {
    id.to_string()
}

fn main() {}
