use cachette::cached;

#[derive(Clone)]
struct User {
    id: u64,
}

impl User {
    #[cached]
    async fn load(id: u64) -> Option<Self> {
        Some(User { id })
    }
}

fn main() {
    let _ = User { id: 1 }.id;
}
