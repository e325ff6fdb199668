//! Integration tests of the launcher: golden rewrites, the injection test (the rewritten Chronos
//! command really executed), orchestration against fake servers, and the CLI.

mod corpus;
mod e2e;
mod fidelity;
mod golden;
mod injection;
mod orchestration;
mod support;
