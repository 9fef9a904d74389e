//! Engine benchmarks (written with the bench suite).
fn main() {}
