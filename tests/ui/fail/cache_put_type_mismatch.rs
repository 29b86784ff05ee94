use cachette::{cache_put, cached};

#[derive(Clone)]
struct User {
    id: u64,
}

#[derive(Clone)]
struct Account {
    id: u64,
}

#[derive(Debug)]
struct DbError;

#[cached]
async fn get_user(id: u64) -> Result<User, DbError> {
    Ok(User { id })
}

#[cache_put(get_user(id))]
async fn update_account(id: u64) -> Result<Account, DbError> {
    Ok(Account { id })
}

fn main() {}
