// A write path naming a function that is not `#[cached]`: the error is on the user's
// `get_user`. It names the hidden target method `#[cached]` would have written (rustc has no way
// to word a missing method), which says what is missing: add `#[cached]` to `get_user`.
use cachette::invalidates;

async fn get_user(id: u64) -> String {
    format!("user {id}")
}

#[invalidates(get_user(id))]
async fn rename(id: u64) {
    let _ = get_user(id).await;
}

fn main() {}
