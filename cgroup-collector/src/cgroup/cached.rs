//! [`CgroupReader`]: a cgroup's files kept open and read again only when their figures can have
//! changed (one `pread` per pass for most containers).

use std::fs;

use super::*;
use crate::reader::{CachedFile, FdBudget};

/// v1: reads of `cpu.cfs_quota_us` between two reads of `cpu.cfs_period_us` while the quota
/// stays the same.
pub(super) const PERIOD_REFRESH_READS: u32 = 10;

/// v1: `cpu.cfs_quota_us` is read at least once every this many reads (and at the next read
/// after this process wrote a limit): a limit changed by another process is seen within them.
pub(super) const QUOTA_REFRESH_READS: u32 = 5;

/// Counts the CPU limits this process has written (see [`note_limit_written`]).
static LIMITS_WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Tells every [`CgroupReader`] of this process to read its quota again at its next read: a
/// limit was just written (directly or through the Docker API). Called by the resize route.
pub(crate) fn note_limit_written() {
    LIMITS_WRITTEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn limits_written() -> u64 {
    LIMITS_WRITTEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// v1: `cpu.stat` (the throttling counters) is read at least once every this many reads, also
/// while the group cannot have been throttled (see [`CgroupReader::read`]): `nr_periods` lags
/// by fewer reads than this.
pub(super) const THROTTLE_REFRESH_READS: u32 = 10;

/// CPUs the kernel may hand CFS bandwidth to (configured, not only online: conservative), and
/// the slice each takes from the group's quota at a time (`sched_cfs_bandwidth_slice_us`).
fn bandwidth_slack_ns() -> u64 {
    static SLACK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SLACK.get_or_init(|| {
        use nix::unistd::{SysconfVar, sysconf};
        let cpus = sysconf(SysconfVar::_NPROCESSORS_CONF)
            .ok()
            .flatten()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(1)
            .max(1);
        let slice_us = fs::read_to_string("/proc/sys/kernel/sched_cfs_bandwidth_slice_us")
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(5_000);
        cpus.saturating_mul(slice_us).saturating_mul(1_000)
    })
}

/// The last limit read: the quota's text, the limit, reads since the quota and since the period
/// were read, and [`limits_written`] then.
#[derive(Debug, Clone)]
struct LimitCache {
    quota_text: String,
    limit: CpuLimit,
    since_quota: u32,
    quota_reads: u32,
    written: u64,
}

/// The last `cpuacct.stat` reading and the total it was read at.
#[derive(Debug, Clone, Copy)]
struct SplitCache {
    at_total_ns: u64,
    user_ns: u64,
    system_ns: u64,
}

/// The last `cpu.stat` reading, the total and quota it was read at, and reads since.
#[derive(Debug, Clone, Copy)]
struct ThrottleCache {
    at_total_ns: u64,
    quota_us: Option<u64>,
    value: Option<Throttling>,
    reads: u32,
}

/// Reads one cgroup pass after pass through [`CachedFile`]s (one `pread` per file per pass).
#[derive(Debug)]
pub struct CgroupReader {
    files: ReaderFiles,
}

#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per container, made once and never moved; a box would add an indirection to every read"
)]
enum ReaderFiles {
    V1 {
        usage: CachedFile,
        stat: CachedFile,
        cpu: Option<[CachedFile; 3]>,
        /// The limit: the quota is re-read every [`QUOTA_REFRESH_READS`] reads and after this
        /// process wrote a limit, the period when the quota changed and every
        /// [`PERIOD_REFRESH_READS`] quota reads (it almost never changes).
        period: Option<LimitCache>,
        /// `cpuacct.stat`, re-read once the group has used a USER_HZ tick since.
        split: Option<SplitCache>,
        /// `cpu.stat`, re-read when the group may have been throttled since.
        throttle: Option<ThrottleCache>,
    },
    V2 {
        stat: CachedFile,
        max: CachedFile,
    },
}

impl CgroupReader {
    /// A reader for `dirs`; descriptors come out of `budget`.
    #[must_use]
    pub fn new(dirs: &CgroupDirs, budget: &FdBudget) -> Self {
        let f = |d: &Path, name: &str| CachedFile::new(d.join(name), budget.clone());
        let files = match dirs {
            CgroupDirs::V1 { cpuacct, cpu } => ReaderFiles::V1 {
                usage: f(cpuacct, "cpuacct.usage"),
                stat: f(cpuacct, "cpuacct.stat"),
                cpu: cpu.as_deref().map(|c| {
                    [
                        f(c, "cpu.cfs_quota_us"),
                        f(c, "cpu.cfs_period_us"),
                        f(c, "cpu.stat"),
                    ]
                }),
                period: None,
                split: None,
                throttle: None,
            },
            CgroupDirs::V2 { dir } => ReaderFiles::V2 {
                stat: f(dir, "cpu.stat"),
                max: f(dir, "cpu.max"),
            },
        };
        Self { files }
    }

    /// Release every descriptor (the container is gone; a later read reopens).
    pub fn close(&mut self) {
        match &mut self.files {
            ReaderFiles::V1 {
                usage,
                stat,
                cpu,
                period,
                split,
                throttle,
            } => {
                *period = None;
                *split = None;
                *throttle = None;
                usage.close();
                stat.close();
                for c in cpu.iter_mut().flatten() {
                    c.close();
                }
            }
            ReaderFiles::V2 { stat, max } => {
                stat.close();
                max.close();
            }
        }
    }

    /// Same as [`CgroupDirs::read`], through the cached descriptors; `buf` is scratch space.
    ///
    /// cgroup v1 takes one `pread` per file, and most of a pass is the kernel's side of them, so
    /// only `cpuacct.usage` is read every time (measured in the crate README's "Overhead"):
    /// - `cpu.cfs_quota_us` every [`QUOTA_REFRESH_READS`] reads, and at the next read after this
    ///   process wrote a limit ([`note_limit_written`]): a quota changed by another process is
    ///   seen within that many reads; `cpu.cfs_period_us` when the quota changed and every
    ///   [`PERIOD_REFRESH_READS`] quota reads.
    /// - `cpuacct.stat` (user/system split, in USER_HZ ticks) once the group has used at least
    ///   one tick of CPU (`cpuacct.usage`, read every time) since it was last read: below that
    ///   its counters move by at most the one tick they are rounded to. Without `cpuacct.usage`
    ///   it is read every time (it is then the total).
    /// - `cpu.stat` (throttling) when the group may have been throttled since it was last read:
    ///   it has a quota, and the CPU it has used since then plus the runtime the CPUs may hold
    ///   unused (a bandwidth slice each) reaches one period's quota — below that no period can
    ///   have run out of quota. Also when the quota changed, and at least every
    ///   [`THROTTLE_REFRESH_READS`] reads: `nr_periods`, which counts active periods, lags by
    ///   fewer reads than that; `nr_throttled` and the throttled time are never stale.
    ///
    /// Long: the hot path of a pass, every file's decision above in the order it is taken.
    pub fn read(&mut self, clk_tck: u64, buf: &mut Vec<u8>) -> Result<CgroupStats, CgroupError> {
        fn get<'b>(f: &mut CachedFile, buf: &'b mut Vec<u8>) -> Result<&'b str, CgroupError> {
            match f.read(buf) {
                Ok(t) => Ok(t),
                Err(e) => Err(CgroupError::io("read", f.path(), e)),
            }
        }
        fn get_opt<'b>(
            f: &mut CachedFile,
            buf: &'b mut Vec<u8>,
        ) -> Result<Option<&'b str>, CgroupError> {
            match f.read(buf) {
                Ok(t) => Ok(Some(t)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(CgroupError::io("read", f.path(), e)),
            }
        }
        match &mut self.files {
            ReaderFiles::V1 {
                usage,
                stat,
                cpu,
                period: cached,
                split,
                throttle,
            } => {
                let total = match get_opt(usage, buf)? {
                    Some(t) => Some(parse_u64(t, "value", usage.path())?),
                    None => None,
                };
                let tick_ns = 1_000_000_000 / clk_tck.max(1);
                let (user_ns, system_ns) = match (total, *split) {
                    (Some(t), Some(c)) if t >= c.at_total_ns && t - c.at_total_ns < tick_ns => {
                        (c.user_ns, c.system_ns)
                    }
                    _ => {
                        let (u, s) = v1::parse_cpuacct_stat(get(stat, buf)?, clk_tck, stat.path())?;
                        *split = total.map(|t| SplitCache {
                            at_total_ns: t,
                            user_ns: u,
                            system_ns: s,
                        });
                        (u, s)
                    }
                };
                // Without `cpuacct.usage`, the total is user + system (tick resolution).
                let total_ns = total.unwrap_or_else(|| user_ns.saturating_add(system_ns));
                let usage = CpuUsage {
                    total_ns,
                    user_ns,
                    system_ns,
                };
                let Some([quota, period, cstat]) = cpu else {
                    return Ok(CgroupStats {
                        usage,
                        limit: None,
                        throttling: None,
                    });
                };
                let written = limits_written();
                let limit = match cached {
                    Some(c) if c.written == written && c.since_quota + 1 < QUOTA_REFRESH_READS => {
                        c.since_quota += 1;
                        c.limit
                    }
                    _ => {
                        let q_text = get(quota, buf)?.trim();
                        match cached {
                            // Same quota text and (recently read) period: the same limit, with
                            // no allocation or parsing.
                            Some(c)
                                if c.quota_text == q_text
                                    && c.quota_reads < PERIOD_REFRESH_READS =>
                            {
                                c.quota_reads += 1;
                                c.since_quota = 0;
                                c.written = written;
                                c.limit
                            }
                            _ => {
                                let q = q_text.to_owned();
                                let l = v1::parse_limit(&q, get(period, buf)?, quota.path())?;
                                *cached = Some(LimitCache {
                                    quota_text: q,
                                    limit: l,
                                    since_quota: 0,
                                    quota_reads: 0,
                                    written,
                                });
                                l
                            }
                        }
                    }
                };
                let quiet = |c: &ThrottleCache| {
                    let used = total_ns.checked_sub(c.at_total_ns);
                    c.quota_us == limit.quota_us
                        && c.reads + 1 < THROTTLE_REFRESH_READS
                        && used.is_some_and(|used| match limit.quota_us {
                            None => true,
                            Some(q) => used.saturating_add(bandwidth_slack_ns()) < q * 1_000,
                        })
                };
                let throttling = match throttle {
                    Some(c) if quiet(c) => {
                        c.reads += 1;
                        c.value
                    }
                    _ => {
                        let value = match get_opt(cstat, buf)? {
                            Some(t) => Some(v1::parse_cpu_stat(t, cstat.path())?),
                            None => None,
                        };
                        *throttle = Some(ThrottleCache {
                            at_total_ns: total_ns,
                            quota_us: limit.quota_us,
                            value,
                            reads: 0,
                        });
                        value
                    }
                };
                Ok(CgroupStats {
                    usage,
                    limit: Some(limit),
                    throttling,
                })
            }
            ReaderFiles::V2 { stat, max } => {
                let (usage, throttling) = v2::parse_cpu_stat(get(stat, buf)?, stat.path())?;
                let limit = match get_opt(max, buf)? {
                    Some(t) => Some(v2::parse_cpu_max(t, max.path())?),
                    None => None,
                };
                Ok(CgroupStats {
                    usage,
                    limit,
                    throttling,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached reader reads `cpuacct.stat` and `cpu.stat` only when they can have changed;
    /// what it returns always equals a fresh read of every file when they could have.
    #[test]
    fn cached_reader_skips_only_files_that_cannot_have_changed() {
        let tmp = tempfile::tempdir().unwrap();
        // A quota comfortably above the bandwidth slack of this machine's CPUs, per period.
        let quota_us = bandwidth_slack_ns() / 1_000 * 4 + 100_000;
        let quota = i64::try_from(quota_us).unwrap();
        testkit::cgroups::fixture_v1(tmp.path(), "t", 0, 0, 0, quota);
        let acct = tmp.path().join("cpuacct/t");
        let cpu = tmp.path().join("cpu/t");
        let set = |usage: u64, user: u64, stat: &str| {
            fs::write(acct.join("cpuacct.usage"), format!("{usage}\n")).unwrap();
            fs::write(
                acct.join("cpuacct.stat"),
                format!("user {user}\nsystem 0\n"),
            )
            .unwrap();
            fs::write(cpu.join("cpu.stat"), stat).unwrap();
        };
        let stat =
            |p: u64, t: u64| format!("nr_periods {p}\nnr_throttled {t}\nthrottled_time {t}\n");
        set(1_000_000_000, 100, &stat(10, 1));
        let dirs = CgroupDirs::V1 {
            cpuacct: acct.clone(),
            cpu: Some(cpu.clone()),
        };
        let budget = crate::reader::FdBudget::new(8);
        let mut r = CgroupReader::new(&dirs, &budget);
        let mut buf = Vec::new();
        let mut read = || r.read(100, &mut buf).unwrap();
        let first = read();
        assert_eq!(first, dirs.read(100).unwrap());

        // Less than a tick (10 ms) and far less than a period's quota used: both files keep
        // their last reading (the fixture's new content, which the kernel could not have
        // produced, stays unseen); the total is fresh.
        set(1_005_000_000, 999, &stat(999, 999));
        let s = read();
        assert_eq!(s.usage.total_ns, 1_005_000_000);
        assert_eq!(s.usage.user_ns, 1_000_000_000);
        assert_eq!(s.throttling.unwrap().nr_throttled, 1);

        // A tick used since `cpuacct.stat` was read: read again.
        set(1_010_000_000, 101, &stat(11, 1));
        let s = read();
        assert_eq!(s.usage.user_ns, 1_010_000_000);
        assert_eq!(
            s.throttling.unwrap().nr_periods,
            10,
            "still far below the quota"
        );

        // More than a period's quota used since `cpu.stat` was read: throttling was possible.
        set(1_010_000_000 + quota_us * 1_000, 200, &stat(20, 3));
        let s = read();
        assert_eq!(s, dirs.read(100).unwrap());
        assert_eq!(s.throttling.unwrap().nr_throttled, 3);

        // A quota written by this process is read at the next read, and with it `cpu.stat`.
        set(1_010_000_000 + quota_us * 1_000, 200, &stat(21, 4));
        fs::write(cpu.join("cpu.cfs_quota_us"), format!("{}\n", quota_us + 1)).unwrap();
        note_limit_written();
        let s = read();
        assert_eq!(s.limit.unwrap().quota_us, Some(quota_us + 1));
        assert_eq!(s.throttling.unwrap().nr_throttled, 4);

        // One written by another process within QUOTA_REFRESH_READS reads.
        fs::write(cpu.join("cpu.cfs_quota_us"), format!("{}\n", quota_us + 2)).unwrap();
        let seen = (0..QUOTA_REFRESH_READS)
            .position(|_| read().limit.unwrap().quota_us == Some(quota_us + 2));
        assert!(
            seen.is_some(),
            "not seen within {QUOTA_REFRESH_READS} reads"
        );

        // Idle: `nr_periods` is refreshed at least every THROTTLE_REFRESH_READS reads.
        set(1_010_000_000 + quota_us * 1_000, 200, &stat(30, 4));
        let periods: Vec<u64> = (0..THROTTLE_REFRESH_READS)
            .map(|_| read().throttling.unwrap().nr_periods)
            .collect();
        assert_eq!(
            periods.iter().filter(|&&p| p == 30).count(),
            1,
            "{periods:?}"
        );
        assert_eq!(periods.last(), Some(&30));

        // A counter reset (the container restarted under the same path): everything is read.
        set(1_000, 0, &stat(0, 0));
        assert_eq!(read(), dirs.read(100).unwrap());

        // Unlimited: no bandwidth control, the counters cannot move; still refreshed now and
        // then, and at once when a quota appears.
        fs::write(cpu.join("cpu.cfs_quota_us"), "-1\n").unwrap();
        note_limit_written();
        set(2_000, 0, &stat(0, 0));
        let base = read();
        assert_eq!(base.limit.unwrap().quota_us, None);
        set(900_000_000_000, 90_000, &stat(5, 5));
        assert_eq!(read().throttling, base.throttling);
        fs::write(cpu.join("cpu.cfs_quota_us"), format!("{quota_us}\n")).unwrap();
        note_limit_written();
        assert_eq!(read(), dirs.read(100).unwrap());
    }
}
