use std::rc::Rc;

use cachette::{cached, write_behind};

#[cached]
async fn balance(account: u64) -> u64 {
    account
}

#[write_behind(balance(account), value = amount)]
async fn set_balance(log: Rc<String>, account: u64, amount: u64) {
    let _ = (log, account, amount);
}

fn main() {}
