use cachette::{cached, write_behind};

struct Db;

#[cached]
async fn balance(account: u64) -> u64 {
    account
}

#[write_behind(balance(account), value = amount)]
async fn set_balance(db: &Db, account: u64, amount: u64) {
    let _ = (db, account, amount);
}

fn main() {}
