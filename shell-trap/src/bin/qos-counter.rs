//! `qos-counter TARGET [--work W]`: a tiny deterministic workload with application-assisted
//! checkpoints, for shell-trap's acceptance tests and measurements.
//!
//! It counts from 0 to `TARGET`; each step mixes `W` rounds (default 1000) of a 64-bit hash into a
//! running digest, so the final digest proves that every step was done exactly once, in order.
//! It uses only `std` (plus two libc calls), so it also builds as a static binary for a Docker
//! image: `rustc --edition 2024 -O -C target-feature=+crt-static -W unsafe_code
//! src/bin/qos-counter.rs`.
//!
//! - With `QOS_CHECKPOINT_DIR`: on start it resumes from `counter.state` there, if present and
//!   valid; on SIGTERM/SIGINT it writes its state atomically (temporary file, fsync, rename, fsync
//!   of the directory) and exits 0. When done it deletes the file.
//! - Without it: SIGTERM/SIGINT stops it with status 143/130 and the work is lost.
//! - Its own CPU time (`CLOCK_PROCESS_CPUTIME_ID`) is accumulated across incarnations.
//!
//! Output (stdout): `qos-counter: starting from 0/T …` or `qos-counter: resumed at N/T …`,
//! `qos-counter: checkpointed at N/T …`, and at the end one JSON line
//! `{"status":"done","target":T,"count":T,"digest":"…","cpu_seconds":…,"incarnations":K,"resumed":…}`.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop(sig: i32) {
    STOP.store(sig, Ordering::SeqCst);
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

#[expect(unsafe_code, reason = "two libc calls: signal(2) and clock_gettime(2)")]
mod sys {
    unsafe extern "C" {
        pub(super) fn signal(signum: i32, handler: usize) -> usize;
        pub(super) fn clock_gettime(clock: i32, ts: *mut super::Timespec) -> i32;
    }

    /// Installs `on_stop` for SIGINT (2) and SIGTERM (15).
    pub(super) fn install() {
        let h = super::on_stop as extern "C" fn(i32) as usize;
        // SAFETY: `on_stop` only stores into an atomic, which is async-signal-safe.
        unsafe {
            signal(2, h);
            signal(15, h);
        }
    }

    /// CPU time of this process, nanoseconds.
    pub(super) fn cpu_ns() -> u64 {
        let mut ts = super::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; clock 2 is CLOCK_PROCESS_CPUTIME_ID.
        let rc = unsafe { clock_gettime(2, &raw mut ts) };
        if rc != 0 {
            return 0;
        }
        u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(ts.tv_nsec).unwrap_or(0)
    }
}

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

fn usage() -> ! {
    eprintln!("usage: qos-counter TARGET [--work W]");
    std::process::exit(2);
}

fn main() {
    sys::install();
    let mut args = std::env::args().skip(1);
    let target: u64 = args
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| usage());
    let mut work = 1000u64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--work" => {
                work = args
                    .next()
                    .and_then(|w| w.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    let dir: Option<PathBuf> = std::env::var_os("QOS_CHECKPOINT_DIR").map(PathBuf::from);
    let mut st = State {
        target,
        work,
        count: 0,
        digest: 0,
        cpu_ns: 0,
        incarnations: 1,
    };
    let mut resumed = false;
    match &dir {
        Some(d) => match fs::read_to_string(d.join(STATE)) {
            Ok(text) => match State::decode(&text) {
                Ok(saved) if saved.target == target && saved.work == work => {
                    st = State {
                        incarnations: saved.incarnations + 1,
                        ..saved
                    };
                    resumed = true;
                    println!(
                        "qos-counter: resumed at {}/{target} (incarnation {}) from {}",
                        st.count,
                        st.incarnations,
                        d.display()
                    );
                }
                Ok(_) => println!(
                    "qos-counter: the state in {} is for another run; starting from 0/{target}",
                    d.display()
                ),
                Err(e) => println!(
                    "qos-counter: the state in {} is unusable ({e}); starting from 0/{target}",
                    d.display()
                ),
            },
            Err(_) => println!(
                "qos-counter: starting from 0/{target} (no checkpoint in {})",
                d.display()
            ),
        },
        None => println!(
            "qos-counter: starting from 0/{target} (no QOS_CHECKPOINT_DIR: a stop loses the work)"
        ),
    }
    let _ = std::io::stdout().flush();
    let cpu_start = sys::cpu_ns();
    while st.count < target {
        let sig = STOP.load(Ordering::SeqCst);
        if sig != 0 {
            st.cpu_ns += sys::cpu_ns().saturating_sub(cpu_start);
            match &dir {
                Some(d) => match save(d, &st) {
                    Ok(()) => {
                        println!("qos-counter: checkpointed at {}/{target}", st.count);
                        std::process::exit(0);
                    }
                    Err(e) => {
                        eprintln!("qos-counter: cannot save the state in {}: {e}", d.display());
                        std::process::exit(3);
                    }
                },
                None => {
                    println!(
                        "qos-counter: stopped at {}/{target} without a checkpoint directory; the \
                         work is lost",
                        st.count
                    );
                    std::process::exit(128 + sig);
                }
            }
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
    if let Some(d) = &dir {
        let _ = fs::remove_file(d.join(STATE));
    }
}
