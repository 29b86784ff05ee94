use cachette::cached;

#[cached(unless = "draft")]
async fn doc(id: u64) -> String {
    format!("doc {id}")
}

#[cached(unless)]
async fn other(id: u64) -> String {
    format!("doc {id}")
}

fn main() {}
