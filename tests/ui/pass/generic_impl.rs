// A method in a generic inherent impl whose key and value do not mention the impl's generics.
use std::marker::PhantomData;

use cachette::cached;

struct Repo<T> {
    base: u64,
    _t: PhantomData<T>,
}

impl<T: Send + Sync> Repo<T> {
    #[cached]
    async fn get(&self, id: u64) -> u64 {
        self.base + id
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let a: Repo<u8> = Repo {
            base: 10,
            _t: PhantomData,
        };
        assert_eq!(a.get(1).await, 11);
        assert_eq!(a.get(1).await, 11);
        assert_eq!(Repo::<u8>::get_stats().hits, 1);
    });
}
