//! The count itself: its state (saved atomically, checksummed), resuming from it, and the
//! loop that stops at a signal with a checkpoint or without one.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::sys;

const STATE: &str = "counter.state";

#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    target: u64,
    work: u64,
    count: u64,
    digest: u64,
    cpu_ns: u64,
    incarnations: u64,
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl State {
    fn encode(&self) -> String {
        let body = format!(
            "qos-counter 1 {} {} {} {} {} {}",
            self.target, self.work, self.count, self.digest, self.cpu_ns, self.incarnations
        );
        format!("{body} {:016x}\n", fnv(&body))
    }

    fn decode(text: &str) -> Result<Self, String> {
        let text = text.trim_end();
        let (body, check) = text.rsplit_once(' ').ok_or("truncated")?;
        if format!("{:016x}", fnv(body)) != check {
            return Err("checksum mismatch (torn or corrupt)".into());
        }
        let f: Vec<&str> = body.split(' ').collect();
        if f.len() != 8 || f[0] != "qos-counter" || f[1] != "1" {
            return Err("not a qos-counter v1 state".into());
        }
        let n = |i: usize| f[i].parse::<u64>().map_err(|e| e.to_string());
        Ok(Self {
            target: n(2)?,
            work: n(3)?,
            count: n(4)?,
            digest: n(5)?,
            cpu_ns: n(6)?,
            incarnations: n(7)?,
        })
    }
}

fn save(dir: &Path, st: &State) -> std::io::Result<()> {
    let tmp = dir.join(format!("{STATE}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(st.encode().as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(STATE))?;
    File::open(dir)?.sync_all()
}

#[inline(never)]
fn step(digest: u64, i: u64, work: u64) -> u64 {
    let mut x = digest ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..work {
        x = x
            .wrapping_mul(0x5851_f42d_4c95_7f2d)
            .wrapping_add(0x1405_7b7e_f767_814f);
        x ^= x >> 29;
    }
    std::hint::black_box(x)
}

/// `TARGET [--work W]` (W defaults to 1000); `None` on anything else.
pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Option<(u64, u64)> {
    let target = args.next()?.parse().ok()?;
    let mut work = 1000u64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--work" => work = args.next()?.parse().ok()?,
            _ => return None,
        }
    }
    Some((target, work))
}

/// The state to start from: the saved one in `dir` if it is valid and for this run, else a
/// fresh one; says which on stdout. `true` when resumed.
fn start(target: u64, work: u64, dir: Option<&Path>) -> (State, bool) {
    let fresh = State {
        target,
        work,
        count: 0,
        digest: 0,
        cpu_ns: 0,
        incarnations: 1,
    };
    let Some(d) = dir else {
        println!(
            "qos-counter: starting from 0/{target} (no QOS_CHECKPOINT_DIR: a stop loses the work)"
        );
        return (fresh, false);
    };
    let Ok(text) = fs::read_to_string(d.join(STATE)) else {
        println!(
            "qos-counter: starting from 0/{target} (no checkpoint in {})",
            d.display()
        );
        return (fresh, false);
    };
    match State::decode(&text) {
        Ok(saved) if saved.target == target && saved.work == work => {
            let st = State {
                incarnations: saved.incarnations + 1,
                ..saved
            };
            println!(
                "qos-counter: resumed at {}/{target} (incarnation {}) from {}",
                st.count,
                st.incarnations,
                d.display()
            );
            (st, true)
        }
        Ok(_) => {
            println!(
                "qos-counter: the state in {} is for another run; starting from 0/{target}",
                d.display()
            );
            (fresh, false)
        }
        Err(e) => {
            println!(
                "qos-counter: the state in {} is unusable ({e}); starting from 0/{target}",
                d.display()
            );
            (fresh, false)
        }
    }
}

/// Stopped by `sig`: saves the state in `dir` (exit 0, or 3 if it cannot be saved), or, with no
/// directory, loses the work (exit 128 + `sig`).
fn stop(st: &State, dir: Option<&Path>, sig: i32) -> i32 {
    let Some(d) = dir else {
        println!(
            "qos-counter: stopped at {}/{} without a checkpoint directory; the work is lost",
            st.count, st.target
        );
        return 128 + sig;
    };
    match save(d, st) {
        Ok(()) => {
            println!("qos-counter: checkpointed at {}/{}", st.count, st.target);
            0
        }
        Err(e) => {
            eprintln!("qos-counter: cannot save the state in {}: {e}", d.display());
            3
        }
    }
}

/// Counts to `target` (from the saved state in `dir`, if any) and prints the JSON result line;
/// the process's exit status.
pub(crate) fn run(target: u64, work: u64, dir: Option<&Path>) -> i32 {
    let (mut st, resumed) = start(target, work, dir);
    let _ = std::io::stdout().flush();
    let cpu_start = sys::cpu_ns();
    while st.count < target {
        if let Some(sig) = sys::stop_signal() {
            st.cpu_ns += sys::cpu_ns().saturating_sub(cpu_start);
            return stop(&st, dir, sig);
        }
        st.digest = step(st.digest, st.count, work);
        st.count += 1;
    }
    st.cpu_ns += sys::cpu_ns().saturating_sub(cpu_start);
    #[expect(clippy::cast_precision_loss, reason = "seconds for a report line")]
    let cpu_seconds = st.cpu_ns as f64 / 1e9;
    println!(
        "{{\"status\":\"done\",\"target\":{target},\"count\":{},\"digest\":\"{:016x}\",\
         \"cpu_seconds\":{cpu_seconds:.6},\"incarnations\":{},\"resumed\":{resumed}}}",
        st.count, st.digest, st.incarnations
    );
    if let Some(d) = dir {
        let _ = fs::remove_file(d.join(STATE));
    }
    0
}
