//! Integration tests of the testbed: the emulators driven through the `frameworks` clients and
//! raw HTTP, the `testbed serve` binary, the Docker runtime and recovery after a crash. One test
//! binary (faster to build and link than one per file).

mod acceptance;
mod chronos;
mod chronos_versions;
mod cli;
mod docker;
mod hostile;
mod marathon;
mod marathon_health;
mod recovery;
mod support;
