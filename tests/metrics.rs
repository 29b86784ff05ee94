//! The `metrics` feature: every counter of `f_stats()` reaches the installed `metrics` recorder
//! on `cachette::stats::publish()`, labelled with the function and its store; and each load
//! runs in a `cachette.load` tracing span that records its outcome.
#![cfg(feature = "metrics")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cachette::{cached, invalidates};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;

#[cached(name = "metrics::price", capacity = 2)]
async fn price(sku: u32) -> Result<u64, String> {
    if sku == 0 {
        return Err("no such sku".to_owned());
    }
    Ok(u64::from(sku) * 10)
}

#[invalidates(price(sku))]
async fn reprice(sku: u32) {
    let _ = sku;
}

/// The metrics a snapshot holds, by name and sorted labels: their kind and value.
type Published = HashMap<(String, Vec<(String, String)>), (MetricKind, f64)>;

/// The published value of `name` for `price`, with its kind and labels checked.
fn value(snapshot: &Published, name: &str) -> (MetricKind, f64) {
    let labels = vec![
        ("function".to_owned(), "metrics::price".to_owned()),
        ("store".to_owned(), "memory".to_owned()),
    ];
    *snapshot
        .get(&(name.to_owned(), labels))
        .unwrap_or_else(|| panic!("{name} was not published: {snapshot:?}"))
}

fn snapshot(snapshotter: &Snapshotter) -> Published {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let value = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.0,
                DebugValue::Histogram(_) => f64::NAN,
            };
            ((key.name().to_owned(), labels), (kind, value))
        })
        .collect()
}

/// The spans named `cachette.load`, with their fields, as a subscriber sees them.
#[derive(Clone, Default)]
struct Loads(Arc<Mutex<Vec<HashMap<String, String>>>>);

impl tracing::Subscriber for Loads {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut spans = self.0.lock().unwrap();
        let mut fields = Fields::default();
        if span.metadata().name() == "cachette.load" {
            span.record(&mut fields);
        } else {
            fields.0.insert("ignored".into(), String::new());
        }
        spans.push(fields.0);
        tracing::span::Id::from_u64(spans.len() as u64)
    }

    fn record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        self.0.lock().unwrap()[id.into_u64() as usize - 1].extend(fields.0);
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// The only test of this binary: the recorder and the subscriber are the process's.
#[test]
fn every_counter_is_published_with_its_labels_and_each_load_has_a_span() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the first recorder of this process");
    let loads = Loads::default();
    tracing::subscriber::set_global_default(loads.clone()).expect("the first subscriber");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let third = runtime.block_on(async {
        assert_eq!(price(1).await, Ok(10)); // miss, load
        assert_eq!(price(1).await, Ok(10)); // hit
        assert_eq!(price(1).await, Ok(10)); // hit
        assert!(price(0).await.is_err()); // miss, load error
        assert_eq!(price(2).await, Ok(20)); // miss, load
                                            // A third key in room for two: missed (and loaded) until the store admits it over
                                            // the less used entry, which is evicted.
        let mut third = 0;
        while price_stats().evictions == 0 && third < 16 {
            assert_eq!(price(3).await, Ok(30));
            third += 1;
        }
        reprice(3).await;
        third
    });

    let stats = price_stats();
    cachette::stats::publish();
    let published = snapshot(&snapshotter);
    let counters = [
        ("cachette_hits_total", stats.hits),
        ("cachette_misses_total", stats.misses),
        ("cachette_loads_total", stats.loads),
        ("cachette_load_errors_total", stats.load_errors),
        ("cachette_evictions_total", stats.evictions),
        ("cachette_expirations_total", stats.expirations),
        ("cachette_key_errors_total", stats.key_errors),
        ("cachette_store_errors_total", stats.store_errors),
        ("cachette_decode_errors_total", stats.decode_errors),
        ("cachette_encode_errors_total", stats.encode_errors),
        ("cachette_oversize_total", stats.oversize),
        ("cachette_l1_hits_total", stats.l1_hits),
        (
            "cachette_remote_invalidations_total",
            stats.remote_invalidations,
        ),
        ("cachette_declined_total", stats.declined),
    ];
    for (name, expected) in counters {
        assert_eq!(
            value(&published, name),
            (MetricKind::Counter, expected as f64),
            "{name}"
        );
    }
    for (name, expected) in [
        ("cachette_entries", stats.entries),
        (
            "cachette_pending_invalidations",
            stats.pending_invalidations,
        ),
    ] {
        assert_eq!(
            value(&published, name),
            (MetricKind::Gauge, expected as f64),
            "{name}"
        );
    }
    // The calls above, as the counters saw them.
    assert_eq!(
        (stats.hits, stats.misses, stats.loads, stats.load_errors),
        (2, 3 + third, 3 + third, 1)
    );
    assert_eq!(stats.evictions, 1, "{stats:?}");
    assert_eq!(stats.entries, 1, "two fit, one was invalidated: {stats:?}");

    // A publication sets the running totals: publishing twice counts nothing twice (each
    // snapshot starts the recorder's counters from zero, so these two are all it holds).
    runtime.block_on(async {
        assert_eq!(price(1).await, Ok(10)); // the hot entry, kept over 2
    });
    cachette::stats::publish();
    cachette::stats::publish();
    let published = snapshot(&snapshotter);
    assert_eq!(
        value(&published, "cachette_hits_total"),
        (MetricKind::Counter, 3.0)
    );

    // `publish_every` publishes from a thread of its own, with no call to `publish`.
    runtime.block_on(async {
        assert_eq!(price(1).await, Ok(10));
    });
    cachette::stats::publish_every(std::time::Duration::from_millis(10));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut hits = 0.0;
    while hits != 4.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        // Each snapshot starts the counter from zero; the thread's next publication sets it.
        hits = value(&snapshot(&snapshotter), "cachette_hits_total").1;
    }
    assert_eq!(hits, 4.0, "published by the thread");

    // One span per load, each naming the function and its outcome.
    let spans: Vec<HashMap<String, String>> = loads
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|fields| !fields.contains_key("ignored"))
        .cloned()
        .collect();
    let outcomes: Vec<&str> = spans.iter().map(|f| f["outcome"].as_str()).collect();
    let mut expected = vec!["cacheable", "not_cacheable", "cacheable"];
    expected.extend(std::iter::repeat("cacheable").take(third as usize));
    assert_eq!(outcomes, expected, "{spans:?}");
    assert!(
        spans.iter().all(|f| f["function"] == "metrics::price"),
        "{spans:?}"
    );
}
