// Associated functions without `self` in inherent impls marked `#[cached_impl]`, a generic
// impl among them, beside a method; companions through the type; write paths through the
// type and through `Self`; the attribute spelled with its full path. A local `mod core {}`
// must not disturb the expansion.
#![allow(dead_code)]

mod core {}

use std::marker::PhantomData;

use cachette::{cache_put, cached_impl, invalidates};

struct Repo;

#[cached_impl]
impl Repo {
    #[cachette::cached(ttl = "1m")]
    async fn find(id: u64) -> Option<String> {
        Some(format!("row {id}"))
    }

    #[cachette::cached(skip(db))]
    pub(crate) async fn count(db: &str, table: &str) -> Result<usize, String> {
        Ok(db.len() + table.len())
    }

    #[cachette::cached]
    async fn by_ref(&self, id: u64) -> u64 {
        id
    }

    /// Left as written.
    fn helper() -> u64 {
        1
    }

    #[invalidates(Self::find(id), Self::count(db, "users"))]
    async fn touch(db: &str, id: u64) {
        let _ = (db, id);
    }
}

#[cache_put(Repo::find(id))]
async fn put(id: u64) -> Option<String> {
    Some(format!("put {id}"))
}

struct Typed<T>(PhantomData<T>);

#[cached_impl]
impl<T: Send + Sync + 'static> Typed<T> {
    #[cachette::cached]
    async fn size(id: u64) -> usize {
        id as usize
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(Repo::find(1).await.as_deref(), Some("row 1"));
        assert_eq!(Repo::find(1).await.as_deref(), Some("row 1"));
        assert_eq!(Repo::find_stats().hits, 1);
        assert_eq!(Repo::count("db", "users").await, Ok(7));
        assert_eq!(Repo.by_ref(3).await, 3);
        Repo::touch("db", 1).await;
        assert_eq!(Repo::find_stats().entries, 0);
        put(2).await;
        assert_eq!(Repo::find(2).await.as_deref(), Some("put 2"));
        Repo::find_invalidate(2).await;
        Repo::find_clear().await;
        assert_eq!(Repo::find_uncached(4).await.as_deref(), Some("row 4"));
        assert_eq!(Repo::helper(), 1);
        assert_eq!(Typed::<u8>::size(5).await, 5);
        assert_eq!(Typed::<u16>::size(5).await, 5);
        assert_eq!(Typed::<u8>::size_stats().hits, 1, "one cache for every T");
    });
}
