// PENDING: expected an error on `get_user` saying it is not `#[cached]` (add `#[cached]` to it,
// or name a cached function). Actual: "no method named `__cachette_target_get_user` found for
// fn item `fn(u64) -> impl Future<Output = String> {get_user}`", on `get_user`, but naming a
// hidden method and a fn item type. Same for a method: `Self::plain(self, id)` on a non-cached
// method gives "no function or associated item named `__cachette_target_plain`" and suggests
// `Self::__cachette_target_find` (the hidden companion of another, cached, method).
use cachette::invalidates;

async fn get_user(id: u64) -> String {
    format!("user {id}")
}

#[invalidates(get_user(id))]
async fn rename(id: u64) {
    let _ = get_user(id).await;
}

fn main() {}
