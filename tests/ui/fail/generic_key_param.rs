use cachette::cached;
use serde::Serialize;

#[cached]
async fn describe<T: Serialize>(x: T) -> String {
    let _ = x;
    String::new()
}

fn main() {}
