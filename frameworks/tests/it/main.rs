//! Integration tests of the framework clients: recorded payloads, and each client against the
//! servers of `testkit::wire` that answer like the real Marathon, Chronos, Mesos agent and
//! supervisor. One test binary (faster to build and link than one per file).

mod chronos;
mod corpus;
mod http;
mod marathon;
mod mesos;
mod payloads;
mod supervisor;
mod support;
