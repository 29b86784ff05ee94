// With a key template too, a key argument that is not `Serialize` is one error at its type.
use cachette::cached;

struct UserId(u64);

#[cached(ttl = 60, store = "redis", key = "user:{id}")]
async fn name(id: UserId) -> String {
    id.0.to_string()
}

fn main() {}
