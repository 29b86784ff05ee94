use cachette::{cache_put, cached};

#[cached]
async fn get_user(id: u64) -> String {
    format!("user {id}")
}

#[cache_put(all(get_user))]
async fn set_name(id: u64) -> String {
    format!("renamed {id}")
}

fn main() {}
