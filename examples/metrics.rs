//! Cachette's counters in Prometheus text: `cargo run --example metrics --features metrics`.
//!
//! A service installs the exporter it already uses; cachette publishes every cached
//! function's counters through the `metrics` facade when `cachette::stats::publish()` runs —
//! here, right before each render, so a scrape always sees the current totals. The example
//! prints one render; with `--serve` it also answers `GET /metrics` on 127.0.0.1:9898 (or the
//! address in `METRICS_ADDR`) until stopped.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use cachette::cached;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

#[cached(ttl = "1m", name = "catalog::price", capacity = 100)]
async fn price(sku: u32) -> Result<u64, String> {
    tokio::time::sleep(Duration::from_millis(5)).await; // a slow query, in real life
    if sku == 0 {
        return Err("no such sku".to_owned());
    }
    Ok(u64::from(sku) * 100)
}

/// The current counters, in Prometheus text.
fn render(handle: &PrometheusHandle) -> String {
    cachette::stats::publish();
    handle.render()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the process's first metrics recorder");

    for sku in [1, 2, 1, 1, 0, 3, 2] {
        let _ = price(sku).await;
    }
    print!("{}", render(&handle));

    if std::env::args().any(|arg| arg == "--serve") {
        let addr = std::env::var("METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:9898".to_owned());
        let listener = TcpListener::bind(&addr).expect("a free address for the metrics endpoint");
        eprintln!("serving http://{addr}/metrics; stop with Ctrl-C");
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            // The request line and headers are read and ignored: every path gets the metrics.
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = render(&handle);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    }
}
