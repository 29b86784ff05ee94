use cachette::cached;

#[cached]
fn get(id: u64) -> u64 {
    id
}

fn main() {}
