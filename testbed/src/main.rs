//! `testbed serve`: see the library docs.

fn main() {}
