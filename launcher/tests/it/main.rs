//! Integration tests of the launcher: golden rewrites, the injection test (the rewritten Chronos
//! command really executed), orchestration against fake servers, the CLI, and operations (cancel,
//! secrets) on the real binaries.

mod corpus;
mod e2e;
mod fidelity;
mod golden;
mod injection;
mod ops;
mod orchestration;
mod support;
