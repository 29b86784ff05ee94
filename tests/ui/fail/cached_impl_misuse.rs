use cachette::{cached, cached_impl};

#[cached_impl]
async fn not_an_impl(id: u64) -> u64 {
    id
}

struct Repo;

#[cached_impl(ttl = 60)]
impl Repo {
    #[cached]
    async fn find(id: u64) -> u64 {
        id
    }
}

struct Plain;

#[cached_impl]
impl Plain {
    async fn find(id: u64) -> u64 {
        id
    }
}

fn main() {}
