// Write paths to generic cached functions: the generics are inferred from the target's
// arguments, for a named generic, a `where` clause, an `impl Trait` parameter and a lifetime,
// through the function's own name and through a path; `all(f)` through both.
#![allow(dead_code)]

use cachette::{cached, invalidates};

trait Db: Sync {
    fn lookup(&self, id: u64) -> u64;
}

struct Mem;

impl Db for Mem {
    fn lookup(&self, id: u64) -> u64 {
        id * 2
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

#[cached]
async fn tagged<'a>(tag: &'a str) -> String {
    tag.to_owned()
}

mod inner {
    use super::Db;
    use cachette::cached;

    #[cached(skip(db))]
    pub(crate) async fn fetch<D: Db>(db: &D, id: u64) -> u64 {
        db.lookup(id)
    }
}

#[invalidates(fetch(db, id), fetch_where(db, id), fetch_impl(db, id), inner::fetch(db, id))]
async fn write<D: Db>(db: &D, id: u64) {
    let _ = (db, id);
}

#[invalidates(fetch_where(db, id))]
async fn write_dyn(db: &dyn Db, id: u64) {
    let _ = (db, id);
}

#[invalidates(tagged(tag), all(fetch), all(inner::fetch))]
async fn retag(tag: &str) {
    let _ = tag;
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(fetch(&Mem, 5).await, 10);
        assert_eq!(fetch_impl(&Mem, 5).await, 10);
        write(&Mem, 5).await;
        assert_eq!(fetch(&Mem, 5).await, 10);
        assert_eq!(fetch_stats().misses, 2, "invalidated: a miss again");
        assert_eq!(fetch_impl(&Mem, 5).await, 10);
        assert_eq!(fetch_impl_stats().misses, 2);
        write_dyn(&Mem, 5).await;
        assert_eq!(tagged("a").await, "a");
        retag("a").await;
        assert_eq!(tagged("a").await, "a");
        assert_eq!(tagged_stats().misses, 2);
    });
}
