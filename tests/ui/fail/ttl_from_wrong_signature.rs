use std::time::Duration;

use cachette::cached;

/// Gives a `Duration`, not an `Option<Duration>`.
fn token_ttl(token: &String) -> Duration {
    Duration::from_secs(token.len() as u64)
}

#[cached(ttl = 60, ttl_from = token_ttl)]
async fn token(id: u64) -> Option<String> {
    Some(format!("token {id}"))
}

fn main() {}
