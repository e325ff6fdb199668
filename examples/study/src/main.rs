//! Study front end (filled in next).
fn main() {}
