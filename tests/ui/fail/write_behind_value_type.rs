use cachette::{cached, write_behind};

#[cached]
async fn balance(account: u64) -> u64 {
    account
}

#[write_behind(balance(account), value = note)]
async fn set_balance(account: u64, note: String) {
    let _ = (account, note);
}

fn main() {}
