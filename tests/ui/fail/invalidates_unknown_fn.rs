// A target that names no function at all is rustc's own "cannot find value `nope`", on `nope`,
// and nothing about cachette's hidden items.
use cachette::invalidates;

#[invalidates(nope(id))]
async fn rename(id: u64) {
    let _ = id;
}

fn main() {}
