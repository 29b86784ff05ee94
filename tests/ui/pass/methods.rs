// Methods on `&self`, `&mut self` and `self: Arc<Self>`, companions reached through the type.
use std::sync::Arc;

use cachette::cached;

struct Repo {
    calls: u32,
}

impl Repo {
    #[cached]
    async fn by_ref(&self, id: u64) -> u64 {
        id + u64::from(self.calls)
    }

    #[cached]
    async fn by_mut(&mut self, id: u64) -> u64 {
        self.calls += 1;
        id
    }

    #[cached(ttl = 60)]
    async fn by_arc(self: Arc<Self>, id: u64) -> Option<u64> {
        Some(id + u64::from(self.calls))
    }

    #[cached]
    async fn by_value(self, id: u64) -> Result<u64, String> {
        Ok(id + u64::from(self.calls))
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut repo = Repo { calls: 0 };
        assert_eq!(repo.by_ref(1).await, 1);
        assert_eq!(repo.by_mut(1).await, 1);
        assert_eq!(repo.by_mut(1).await, 1);
        assert_eq!(repo.calls, 1);
        assert_eq!(Repo::by_mut_stats().hits, 1);
        let repo = Arc::new(repo);
        assert_eq!(repo.clone().by_arc(1).await, Some(2));
        assert_eq!(repo.clone().by_arc(1).await, Some(2));
        assert_eq!(Repo::by_arc_stats().hits, 1);
        Repo::by_ref_invalidate(1).await;
        Repo::by_mut_clear().await;
        assert_eq!(Repo::by_ref_uncached(&repo, 9).await, 10);
        assert_eq!(Repo { calls: 2 }.by_value(3).await, Ok(5));
    });
}
