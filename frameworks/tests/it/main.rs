//! Integration tests of the framework clients: recorded payloads, and each client against fake
//! servers that answer like the real Marathon, Chronos and Mesos agent. One test binary (faster
//! to build and link than one per file).

mod chronos;
mod corpus;
mod http;
mod marathon;
mod mesos;
mod payloads;
mod supervisor;
mod support;
