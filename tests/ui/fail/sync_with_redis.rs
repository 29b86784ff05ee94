use cachette::cached;

#[cached(ttl = 60, store = "redis")]
fn get(id: u64) -> u64 {
    id
}

#[cached(ttl = 60, store = "tiered")]
fn get_tiered(id: u64) -> u64 {
    id
}

fn main() {}
