// PENDING: the error lands on the right token (`Profile` in the return type) but reads
// "the function or associated item `new` exists for struct `cachette::__private::Codec<Profile>`,
// but its trait bounds were not satisfied" (E0599 on a hidden type), without saying that
// `store = "redis"` needs the value to be `Serialize + Deserialize` or suggesting
// `#[derive(serde::Serialize, serde::Deserialize)]`. Expected: an E0277 "`Profile: Serialize`
// is not satisfied" with rustc's derive note, as key_not_serialize.rs gets for key parameters
// (e.g. a `const` assertion `assert_codec::<#value>()` spanned at the value type, like
// `assert_value` for `Clone`), and no E0599 about `Codec::new`.
use cachette::cached;

#[derive(Clone)]
struct Profile {
    id: u64,
}

#[cached(ttl = "5m", store = "redis")]
async fn profile(id: u64) -> Option<Profile> {
    Some(Profile { id })
}

fn main() {}
