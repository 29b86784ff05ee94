use cachette::cached;

#[derive(Clone)]
struct Profile {
    id: u64,
}

#[cached(ttl = "5m", store = "redis")]
async fn profile(id: u64) -> Option<Profile> {
    Some(Profile { id })
}

fn main() {}
