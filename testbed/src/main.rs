//! `testbed serve`: an emulated Mesos cluster with Marathon and Chronos on one address and each
//! agent on its own. Prints one JSON line `{"marathon": URL, "chronos": URL, "agents": [URL…]}`
//! on stdout once ready; logs go to stderr; SIGTERM/SIGINT stop every task and remove its cgroups
//! and containers before exiting.

fn main() -> std::process::ExitCode {
    testbed::cli::main_entry()
}
