// `pub` / `pub(crate)` on a cached fn reach the fn callers use, as well as its companions.
mod api {
    use cachette::cached;

    #[cached]
    pub async fn get(id: u64) -> u64 {
        id
    }

    #[cached]
    pub(crate) async fn get_crate(id: u64) -> u64 {
        id
    }

    pub struct Repo;

    impl Repo {
        #[cached]
        pub async fn load(&self, id: u64) -> u64 {
            id
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(api::get(1).await, 1);
        assert_eq!(api::get_crate(2).await, 2);
        assert_eq!(api::Repo.load(3).await, 3);
        assert_eq!(api::get_uncached(1).await, 1);
    });
}
