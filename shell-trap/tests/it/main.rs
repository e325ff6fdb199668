//! shell-trap's integration and acceptance tests: the real binary, a recording fake supervisor,
//! the process runtime in real cgroups, and the Docker runtime against a real dockerd
//! (scripts/test.d/docker.up; skipped with a notice when none answers, unless
//! QOS_REQUIRE_DOCKER=1).

mod docker;
mod process;
mod testbed;
mod util;
