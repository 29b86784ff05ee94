use cachette::{cached, write_behind};

#[cached]
async fn balance(account: u64) -> u64 {
    account
}

#[write_behind(balance(account), value = amount)]
async fn set_balance(account: u64, amount: u64) -> Result<u64, String> {
    Ok(account + amount)
}

fn main() {}
