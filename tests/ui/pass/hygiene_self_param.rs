use cachette::cached;

struct Repo;

impl Repo {
    #[cached(skip(__cachette_self))]
    async fn get(&self, __cachette_self: &str, id: u64) -> u64 {
        let _ = __cachette_self;
        id
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(Repo.get("x", 4).await, 4);
        assert_eq!(Repo.get("y", 4).await, 4);
        assert_eq!(Repo::get_stats().hits, 1);
    });
}
