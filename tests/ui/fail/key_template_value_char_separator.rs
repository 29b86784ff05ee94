// `-` can be part of a value, so it does not separate two: "a-b" + "c" and "a" + "b-c" would
// both render `u:a-b-c`.
use cachette::cached;

#[cached(ttl = 60, store = "redis", key = "u:{a}-{b}")]
async fn get(a: String, b: String) -> String {
    a + &b
}

fn main() {}
