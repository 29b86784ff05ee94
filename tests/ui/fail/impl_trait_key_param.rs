use cachette::cached;
use serde::Serialize;

#[cached]
async fn describe(x: impl Serialize) -> String {
    let _ = x;
    String::new()
}

fn main() {}
