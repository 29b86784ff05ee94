// PENDING (design question, low priority): the return type is classified by its last path
// segment, so a user type that happens to be named `Result` (or `Option`) with a type argument
// is taken for std's and the expansion fails inside generated code.
use cachette::cached;

mod wire {
    #[derive(Clone, Debug, PartialEq)]
    pub struct Result<T> {
        pub value: T,
    }
}

#[cached]
async fn fetch(id: u64) -> wire::Result<u64> {
    wire::Result { value: id }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(fetch(1).await.value, 1);
    });
}
