//! Examples live in `examples/`; their tests in `tests/`.

// The README's Rust blocks not marked `ignore` are compiled as doctests here, where every
// crate they use is a dependency.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
