use cachette::cached;

#[cached(skip(nope))]
async fn get(db: &str, id: u64) -> u64 {
    let _ = db;
    id
}

fn main() {}
