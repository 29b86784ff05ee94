use cachette::cached;

struct UserId(u64);

#[cached]
async fn name(id: UserId) -> String {
    id.0.to_string()
}

fn main() {}
