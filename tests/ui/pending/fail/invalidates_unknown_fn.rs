// PENDING: expected an error on `nope` saying there is no cached function `nope` (rustc's own
// "cannot find function `nope`"). Actual: "cannot find function `__cachette_key_nope` in this
// scope": right place, but it names a hidden generated function and says nothing about what to
// write. Worse, with a near miss (`get_usr(id)` next to a cached `get_user`) rustc's help
// suggests replacing it with `__cachette_key_get_user(id)`; see invalidates_misspelled_fn.rs.
use cachette::invalidates;

#[invalidates(nope(id))]
async fn rename(id: u64) {
    let _ = id;
}

fn main() {}
