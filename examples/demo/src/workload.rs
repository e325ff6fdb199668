//! LINPACK sized to this machine, and the testbed's cgroups given the CPU they are allocated.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

/// The LINPACK order every job uses (one solve takes about a hundredth of a CPU-second).
pub const LINPACK_N: u32 = 600;

/// The Docker image of `--docker` jobs (built by `examples/linpack/build-image.sh`).
pub const IMAGE: &str = "qos-linpack:latest";

/// CPU-seconds of the children this process has waited for.
fn children_cpu() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

/// CPU-seconds one solve of order [`LINPACK_N`] takes on one thread here. CPU time, not wall
/// time: other load on the machine does not change it.
///
/// # Errors
/// When `linpack` cannot run or prints something unexpected.
pub fn calibrate(linpack: &Path) -> anyhow::Result<f64> {
    let mut repeat: u64 = 8;
    for _ in 0..6 {
        let before = children_cpu();
        let out = Command::new(linpack)
            .arg(LINPACK_N.to_string())
            .args([
                "--repeat",
                &repeat.to_string(),
                "--threads",
                "1",
                "--output",
                "json",
            ])
            .env_remove("QOS_SUPERVISOR_URL")
            .env_remove("QOS_UUID")
            .env_remove("QOS_CHECKPOINT_DIR")
            .output()
            .with_context(|| format!("cannot run {}", linpack.display()))?;
        let cpu = children_cpu() - before;
        if !out.status.success() {
            bail!(
                "{} failed ({}): {}",
                linpack.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or_default();
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("unexpected linpack output {line:?}"))?;
        let wall = v["seconds"].as_f64().unwrap_or(0.0);
        let secs = if cpu > 0.0 { cpu } else { wall };
        if secs >= 0.8 {
            return Ok(secs / repeat as f64);
        }
        let factor = (1.0 / secs.max(0.01)).ceil().clamp(2.0, 50.0);
        repeat = (repeat as f64 * factor) as u64;
    }
    bail!("linpack {LINPACK_N} never took measurable time")
}

/// Gives the emulated cluster's cgroups the highest CPU weight, so that other load on this
/// machine does not run its jobs below their allocations (each job stays bounded by its quota,
/// the agent by its capacity). Returns the files written.
pub fn prioritise(prefix: &str) -> Vec<String> {
    let mut done = Vec::new();
    for dir in crate::cleanup::cgroup_dirs(Path::new("/sys/fs/cgroup"), prefix) {
        for (file, value) in [("cpu.shares", "262144"), ("cpu.weight", "10000")] {
            let p = dir.join(file);
            if p.exists() && std::fs::write(&p, value).is_ok() {
                done.push(p.display().to_string());
            }
        }
    }
    done
}

/// LINPACK `--repeat` count so that a run is `cpu_seconds` of work on one CPU.
#[must_use]
pub fn repeat_for(cpu_seconds: f64, per_solve: f64) -> u64 {
    ((cpu_seconds / per_solve.max(1e-6)).round() as u64).max(1)
}
