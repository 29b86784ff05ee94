use cachette::{cached, invalidates};

#[cached]
async fn get_user(id: u64) -> String {
    format!("user {id}")
}

#[invalidates(get_user(name))]
async fn rename(name: &str) {
    let _ = name;
}

fn main() {}
