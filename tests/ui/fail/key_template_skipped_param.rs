use cachette::cached;

struct Db;

#[cached(ttl = 60, store = "redis", skip(db), key = "user:{db}:{id}")]
async fn get(db: &Db, id: u64) -> u64 {
    let _ = db;
    id
}

fn main() {}
