use cachette::cached;

struct Row(u64);

#[cached]
async fn load(id: u64) -> Result<Row, String> {
    Ok(Row(id))
}

fn main() {}
