// A misspelled target is one error on the user's token, naming the user's function: rustc's
// own "cannot find value `get_usr`", with `get_user` as the suggestion, and no hidden name.
use cachette::{cached, invalidates};

#[cached]
async fn get_user(id: u64) -> String {
    format!("user {id}")
}

#[invalidates(get_usr(id))]
async fn rename(id: u64) {
    let _ = id;
}

fn main() {}
