//! `rediss://`: the Redis and tiered stores over TLS, against a real redis-server listening
//! with a certificate signed by a CA the test makes, which cachette is told to trust
//! (`Config::builder().redis_tls_ca(pem)`).
#![cfg(feature = "tls")]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachette::{cached, invalidates};
use support::tls::TestPki;
use support::{RedisServer, TlsFiles};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", key = "tls-user:{id}")]
async fn user(id: u64) -> Option<String> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Some(format!("user {id}"))
}

#[invalidates(user(id))]
async fn rename(id: u64) {
    let _ = id;
}

static TIERED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "tiered", name = "tls::tiered")]
async fn tiered(id: u64) -> u64 {
    TIERED_RUNS.fetch_add(1, Ordering::SeqCst);
    id * 2
}

/// The only test of this binary: the configuration is the process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rediss_url_trusting_the_test_ca_stores_reads_and_deletes_over_tls() {
    let dir = std::env::temp_dir().join(format!("cachette-tls-{}", std::process::id()));
    let pki = TestPki::new(&dir);
    let server = RedisServer::start_tls(&TlsFiles {
        cert: pki.cert_file.clone(),
        key: pki.key_file.clone(),
        ca: pki.ca_file.clone(),
    });
    cachette::Config::builder()
        .redis_url(server.tls_url())
        .redis_tls_ca(pki.ca_pem.clone())
        .prefix("tls")
        .redis_timeout(Duration::from_secs(5))
        .install()
        .expect("the first configuration of this process");

    assert_eq!(user(7).await.as_deref(), Some("user 7"));
    cachette::flush().await;
    assert_eq!(server.cli(&["GET", "tls:tls-user:7"]), "\"user 7\"");
    assert_eq!(user(7).await.as_deref(), Some("user 7"));
    assert_eq!(RUNS.load(Ordering::SeqCst), 1, "the second call is a hit");
    let stats = user_stats();
    assert_eq!((stats.hits, stats.store_errors), (1, 0), "{stats:?}");

    rename(7).await;
    assert_eq!(server.cli(&["EXISTS", "tls:tls-user:7"]), "0");

    // The tiered store's pub/sub subscription goes over TLS too.
    assert_eq!(tiered(3).await, 6);
    assert_eq!(tiered(3).await, 6);
    assert_eq!(TIERED_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(cachette::stats::bus_subscriptions(), 1);
    assert_eq!(tiered_stats().store_errors, 0);

    // Every client cachette opened came in on the TLS port (the plain one is `cli`'s).
    let tls_port = server.tls_url().rsplit(':').next().unwrap().to_owned();
    let clients = server.cli(&["CLIENT", "LIST"]);
    let cachette_clients: Vec<&str> = clients
        .lines()
        .filter(|line| !line.contains("cmd=client"))
        .collect();
    assert!(cachette_clients.len() >= 2, "{clients}");
    for client in cachette_clients {
        assert!(
            client.contains(&format!("laddr=127.0.0.1:{tls_port} ")),
            "a client on the plain port: {client}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
