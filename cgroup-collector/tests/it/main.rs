//! Integration tests of the `cgroup-collector` binary: fixture trees (anywhere), the real kernel
//! (root), a real dockerd (DOCKER_HOST; see scripts/test.d/docker.up) and a stand-in supervisor.

mod connections;
mod docker;
mod fixture;
mod kernel;
mod mesos;
mod push;
mod util;
