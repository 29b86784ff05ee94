//! `rediss://` to a server whose certificate no trusted CA signed: the handshake fails, so
//! cachette never talks to it, and every call still returns its body's value.
#![cfg(feature = "tls")]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachette::cached;
use support::tls::TestPki;
use support::{RedisServer, TlsFiles};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", key = "untrusted:{id}")]
async fn user(id: u64) -> Option<String> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Some(format!("user {id}"))
}

/// The only test of this binary: the configuration is the process's.
#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused_and_calls_go_on_without_redis() {
    let dir = std::env::temp_dir().join(format!("cachette-tls-untrusted-{}", std::process::id()));
    let pki = TestPki::new(&dir);
    let server = RedisServer::start_tls(&TlsFiles {
        cert: pki.cert_file.clone(),
        key: pki.key_file.clone(),
        ca: pki.ca_file.clone(),
    });
    // Another CA than the one that signed the server's certificate.
    let other = TestPki::new(&dir.join("other"));
    cachette::Config::builder()
        .redis_url(server.tls_url())
        .redis_tls_ca(other.ca_pem.clone())
        .prefix("untrusted")
        .redis_timeout(Duration::from_millis(500))
        .install()
        .expect("the first configuration of this process");

    assert_eq!(user(7).await.as_deref(), Some("user 7"));
    assert_eq!(user(7).await.as_deref(), Some("user 7"));
    assert_eq!(RUNS.load(Ordering::SeqCst), 2, "nothing was cached");
    let stats = user_stats();
    assert_eq!(stats.hits, 0, "{stats:?}");
    assert!(stats.store_errors >= 1, "{stats:?}");
    assert_eq!(server.cli(&["DBSIZE"]), "0", "nothing reached the server");
    let _ = std::fs::remove_dir_all(dir);
}
