// A cached fn in a nested module, called (with its companions) from outside.
mod outer {
    pub mod inner {
        use cachette::cached;

        #[cached(ttl = 30)]
        pub async fn double(x: u64) -> u64 {
            x * 2
        }

        pub(crate) struct Repo;

        impl Repo {
            #[cached]
            pub(crate) async fn triple(&self, x: u64) -> u64 {
                x * 3
            }
        }
    }
}

use outer::inner;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(inner::double(2).await, 4);
        assert_eq!(outer::inner::double(2).await, 4);
        assert_eq!(inner::double_stats().hits, 1);
        assert_eq!(inner::double_uncached(3).await, 6);
        inner::double_invalidate(2).await;
        inner::double_clear().await;
        assert_eq!(inner::Repo.triple(2).await, 6);
        assert_eq!(inner::Repo::triple_stats().misses, 1);
    });
}
