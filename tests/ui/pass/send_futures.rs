// The futures of cached functions are `Send` (so they can go to `tokio::spawn`) on every store,
// for free functions and methods, with borrowed arguments and errors that borrow them.
use cachette::cached;

fn assert_send<T: Send>(_: T) {}

#[cached(ttl = 60)]
async fn memory(name: &str, id: u64) -> Result<String, &'static str> {
    Ok(format!("{name}{id}"))
}

#[cached(ttl = 60)]
async fn borrowed_error<'a>(name: &'a str) -> Result<u64, &'a str> {
    name.parse().map_err(|_| name)
}

#[cached(ttl = 60, store = "redis")]
async fn on_redis(name: &str) -> Result<String, std::io::Error> {
    Ok(name.to_owned())
}

#[cached(ttl = 60, store = "redis")]
async fn on_redis_borrowed_error<'a>(name: &'a str) -> Result<u64, &'a str> {
    name.parse().map_err(|_| name)
}

#[cached(ttl = 60, store = "tiered")]
async fn on_tiered(ids: &[u64]) -> Option<u64> {
    ids.first().copied()
}

#[cached(ttl = 60, store = "redis")]
async fn always(id: u64) -> u64 {
    id
}

struct Repo;

impl Repo {
    #[cached(ttl = 60, store = "redis")]
    async fn find(&self, id: u64) -> Result<u64, String> {
        Ok(id)
    }

    #[cached(ttl = 60, store = "tiered")]
    async fn find_mut(&mut self, id: u64) -> u64 {
        id
    }
}

fn main() {
    assert_send(memory("a", 1));
    assert_send(borrowed_error("1"));
    assert_send(on_redis("a"));
    assert_send(on_redis_borrowed_error("1"));
    assert_send(on_tiered(&[1]));
    assert_send(always(1));
    let mut repo = Repo;
    assert_send(repo.find(1));
    assert_send(repo.find_mut(1));
}
