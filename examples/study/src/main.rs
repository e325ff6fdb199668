//! `study`: reproduces the thesis' case studies in the simulator and compares policies.
//!
//! ```text
//! study simulate --scenario case1 --policy thesis
//! study simulate --scenario random:42 --policy predictive --json
//! study sweep --seeds 200                         # static, thesis, predictive vs the oracle
//! study real --case 1 --policy predictive          # for real on the testbed, scaled
//! study report                                     # docs/study/ from real and simulated runs
//! ```

fn main() -> std::process::ExitCode {
    study::cli::main_entry()
}
