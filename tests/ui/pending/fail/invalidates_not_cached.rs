// PENDING: expected an error on `get_user` saying it is not `#[cached]` (add `#[cached]` to it,
// or name a cached function). Actual: "cannot find function `__cachette_key_get_user` in this
// scope … not found in this scope", which names a hidden function and reads as if `get_user`
// itself were missing, although it is right there. Same for a method: `Self::plain(self, id)`
// on a non-cached method gives "no associated item named `__cachette_key_plain`" and suggests
// `Self::__cachette_key_find` (a hidden companion of another, cached, method).
use cachette::invalidates;

async fn get_user(id: u64) -> String {
    format!("user {id}")
}

#[invalidates(get_user(id))]
async fn rename(id: u64) {
    let _ = get_user(id).await;
}

fn main() {}
