use cachette::cached;

#[cached]
async fn first(s: &str) -> Option<&str> {
    s.split(',').next()
}

fn main() {}
