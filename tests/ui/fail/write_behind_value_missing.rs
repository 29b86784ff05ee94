use cachette::{cached, write_behind};

#[cached]
async fn balance(account: u64) -> u64 {
    account
}

#[write_behind(balance(account), value = amount, delay = "soon")]
async fn set_balance(account: u64, total: u64) {
    let _ = (account, total);
}

fn main() {}
