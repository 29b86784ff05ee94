use std::rc::Rc;

use cachette::cached;

#[cached]
async fn load(id: u64) -> Option<Rc<u64>> {
    Some(Rc::new(id))
}

fn main() {}
