// PENDING: expected rustc's "cannot find function `get_usr`", ideally with "a function with a
// similar name exists: `get_user`". Actual: "cannot find function `__cachette_key_get_usr`",
// and help that suggests writing `#[invalidates(__cachette_key_get_user(id))]`: a hidden
// generated name, which is wrong advice (the target must be written `get_user(id)`).
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
