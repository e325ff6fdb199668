//! The two libc calls the counter needs (it uses only `std`, so it builds as a static binary).

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal that asked the counter to stop (0: none yet).
static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop(sig: i32) {
    STOP.store(sig, Ordering::SeqCst);
}

/// The signal that asked the counter to stop, if one came.
pub(crate) fn stop_signal() -> Option<i32> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// Installs `on_stop` for SIGINT (2) and SIGTERM (15).
pub(crate) fn install() {
    let h = on_stop as extern "C" fn(i32) as usize;
    // SAFETY: `on_stop` only stores into an atomic, which is async-signal-safe.
    unsafe {
        signal(2, h);
        signal(15, h);
    }
}

/// CPU time of this process, nanoseconds.
pub(crate) fn cpu_ns() -> u64 {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock 2 is CLOCK_PROCESS_CPUTIME_ID.
    let rc = unsafe { clock_gettime(2, &raw mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}
