// Mistakes in the attribute and in the signature are reported together, in one compile.
use cachette::cached;

#[cached(ttl = "5 minutes", skip(nope))]
fn sum((a, b): (u32, u32), c: impl Into<u32>) -> u32 {
    a + b + c.into()
}

fn main() {}
