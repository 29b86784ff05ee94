use cachette::cached;

#[cached]
async fn sum<const N: usize>(xs: [u32; N]) -> u32 {
    xs.iter().sum()
}

fn main() {}
