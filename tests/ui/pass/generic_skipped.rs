// A generic parameter that only appears in a skipped argument is fine: the key is concrete.
use cachette::cached;

trait Db {
    fn lookup(&self, id: u64) -> u64;
}

struct Mem;

impl Db for Mem {
    fn lookup(&self, id: u64) -> u64 {
        id * 2
    }
}

struct Other;

impl Db for Other {
    fn lookup(&self, id: u64) -> u64 {
        id * 3
    }
}

#[cached(skip(db))]
async fn fetch<D: Db>(db: &D, id: u64) -> u64 {
    db.lookup(id)
}

#[cached(skip(db))]
async fn fetch_where<'a, D>(db: &'a D, id: u64) -> u64
where
    D: Db + ?Sized,
{
    db.lookup(id)
}

#[cached(skip(db))]
async fn fetch_impl(db: &impl Db, id: u64) -> u64 {
    db.lookup(id)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(fetch(&Mem, 5).await, 10);
        // Same key, another `D`: the cache is the function's, so it is a hit.
        assert_eq!(fetch(&Other, 5).await, 10);
        assert_eq!(fetch_stats().hits, 1);
        fetch_invalidate(5).await;
        assert_eq!(fetch(&Other, 5).await, 15);

        let dyn_db: &dyn Db = &Mem;
        assert_eq!(fetch_where(dyn_db, 4).await, 8);
        assert_eq!(fetch_impl(&Other, 1).await, 3);
        assert_eq!(fetch_impl(&Mem, 1).await, 3);
        fetch_impl_invalidate(1).await;
    });
}
