// A value of a generic type is refused at the type: the cache of a function holds one type.
use cachette::cached;

#[cached]
async fn make<T: Clone + Default>() -> T {
    T::default()
}

fn main() {}
