// PENDING: in a trait impl the user gets eight E0407/E0599 errors about generated names
// (`load_uncached`, `__cachette_load`, …) and none saying that `#[cached]` only works on free
// fns and inherent methods. Expected: one error saying so (or at least a note on the first).
use cachette::cached;

trait Load {
    async fn load(&self, id: u64) -> u64;
}

struct Repo;

impl Load for Repo {
    #[cached]
    async fn load(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
