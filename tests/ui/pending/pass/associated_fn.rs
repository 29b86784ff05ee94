// PENDING: an associated function without a receiver in an inherent impl. The README/error text
// says `#[cached]` goes on "an `async fn`, free or in an inherent `impl` block"; without `self`
// the expansion calls the accessor as a free function and fails with "cannot find function
// `__cachette_open` in this scope".
use cachette::cached;

#[derive(Clone)]
struct Conn {
    id: u64,
}

impl Conn {
    #[cached]
    pub(crate) async fn open(id: u64) -> Result<Conn, String> {
        Ok(Conn { id })
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(Conn::open(3).await.unwrap().id, 3);
        assert_eq!(Conn::open_stats().misses, 1);
    });
}
