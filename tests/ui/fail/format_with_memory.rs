use cachette::cached;

#[cached(ttl = 60, format = "bincode")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
