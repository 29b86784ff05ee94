// Every shape of return type: io::Result, a local `Result<T>` alias, Option, plain, and unit.
use std::sync::atomic::{AtomicUsize, Ordering};

use cachette::cached;

#[derive(Debug)]
struct MyErr;

type Result<T> = std::result::Result<T, MyErr>;

mod errors {
    pub type Result<T, E = super::MyErr> = std::result::Result<T, E>;
}

#[cached]
async fn io_result(id: u64) -> std::io::Result<u64> {
    if id == 0 {
        return Err(std::io::Error::other("zero"));
    }
    Ok(id)
}

#[cached]
async fn alias_result(id: u64) -> Result<u64> {
    if id == 0 {
        return Err(MyErr);
    }
    Ok(id)
}

#[cached]
async fn path_alias_result(id: u64) -> errors::Result<String> {
    Ok(id.to_string())
}

#[cached]
async fn option(id: u64) -> Option<String> {
    (id != 0).then(|| id.to_string())
}

#[cached]
async fn plain(id: u64) -> Vec<u64> {
    vec![id]
}

static UNIT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn unit(id: u64) {
    let _ = id;
    UNIT_RUNS.fetch_add(1, Ordering::SeqCst);
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(io_result(0).await.is_err());
        assert_eq!(io_result(1).await.unwrap(), 1);
        assert!(alias_result(0).await.is_err());
        assert_eq!(alias_result(2).await.unwrap(), 2);
        assert_eq!(path_alias_result(3).await.unwrap(), "3");
        assert_eq!(option(0).await, None);
        assert_eq!(option(4).await.as_deref(), Some("4"));
        assert_eq!(plain(5).await, vec![5]);
        unit(6).await;
        unit(6).await;
        assert_eq!(UNIT_RUNS.load(Ordering::SeqCst), 1);
    });
}
