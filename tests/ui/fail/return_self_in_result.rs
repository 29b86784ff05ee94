use cachette::cached;

#[derive(Clone, Debug)]
struct User {
    id: u64,
}

impl User {
    #[cached]
    async fn load(&self, id: u64) -> Result<Vec<Self>, String> {
        Ok(vec![User { id: id + self.id }])
    }
}

fn main() {}
