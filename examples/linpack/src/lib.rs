//! A real LINPACK: dense LU factorisation with partial pivoting, multithreaded, with the HPL
//! scaled-residual check, progress reporting and application-assisted checkpointing.
//!
//! This crate is filled in by the examples work.
