use cachette::{cached, invalidates};

#[cached]
async fn get_user(id: u64) -> String {
    format!("user {id}")
}

#[invalidates(get_user(id, 2))]
async fn rename(id: u64) {
    let _ = id;
}

fn main() {}
