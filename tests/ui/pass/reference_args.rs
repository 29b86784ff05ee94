// Reference arguments: `&str`, `&[u8]`, `&T`, and explicit lifetimes.
use cachette::cached;
use serde::Serialize;

#[derive(Serialize)]
struct Query {
    table: String,
    limit: u32,
}

#[cached]
async fn by_str(name: &str) -> usize {
    name.len()
}

#[cached]
async fn by_bytes(bytes: &[u8]) -> usize {
    bytes.len()
}

#[cached]
async fn by_struct(query: &Query) -> String {
    format!("{} {}", query.table, query.limit)
}

#[cached]
async fn by_lifetime<'a, 'b>(a: &'a str, b: &'b [u32]) -> usize {
    a.len() + b.len()
}

#[cached]
async fn by_nested(pairs: &[(&str, Option<&Query>)]) -> usize {
    pairs.len()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let owned = String::from("abc");
        assert_eq!(by_str(&owned).await, 3);
        assert_eq!(by_str("abc").await, 3);
        assert_eq!(by_str_stats().hits, 1);
        assert_eq!(by_bytes(b"abcd").await, 4);
        by_bytes_invalidate(b"abcd").await;
        let query = Query {
            table: "users".into(),
            limit: 10,
        };
        assert_eq!(by_struct(&query).await, "users 10");
        by_struct_invalidate(&query).await;
        assert_eq!(by_lifetime("ab", &[1, 2, 3]).await, 5);
        by_lifetime_invalidate("ab", &[1, 2, 3]).await;
        assert_eq!(by_nested(&[("a", Some(&query)), ("b", None)]).await, 2);
    });
}
