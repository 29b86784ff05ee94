use std::sync::Arc;

use cachette::cached;

struct Repo {
    calls: u32,
}

impl Repo {
    #[cached(skip(self))]
    async fn by_arc(self: Arc<Self>, id: u64) -> Option<u64> {
        Some(id + u64::from(self.calls))
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let repo = Arc::new(Repo { calls: 1 });
        assert_eq!(repo.clone().by_arc(1).await, Some(2));
        assert_eq!(Repo::by_arc_stats().misses, 1);
    });
}
