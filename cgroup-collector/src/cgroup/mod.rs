//! Readers and writers of the kernel's CPU accounting files, cgroup v1 and v2.
//!
//! Every reader has a pure `parse_*` half that takes the file's text (unit-tested with literal
//! strings) and a thin `read_*` half that takes a directory path (tested with tempdir fixtures and
//! against the real kernel). Units are normalised on the way in: all CPU times are nanoseconds,
//! limits are microseconds, as the kernel states them.
//!
//! | figure | v1 file | v2 file |
//! |---|---|---|
//! | total CPU | `cpuacct.usage` (ns) | `cpu.stat` `usage_usec` |
//! | user / system | `cpuacct.stat` `user`/`system` (USER_HZ ticks) | `cpu.stat` `user_usec`/`system_usec` |
//! | limit | `cpu.cfs_quota_us` + `cpu.cfs_period_us` (quota −1 = none) | `cpu.max` (`max 100000` = none) |
//! | throttling | `cpu.stat` `nr_periods`/`nr_throttled`/`throttled_time` (ns) | `cpu.stat` `nr_periods`/`nr_throttled`/`throttled_usec` |
//!
//! In a hybrid layout the v1 `cpu` and `cpuacct` controllers may be mounted together
//! (`/sys/fs/cgroup/cpu,cpuacct`) or apart (`/sys/fs/cgroup/cpu` and `/sys/fs/cgroup/cpuacct`), so a
//! v1 cgroup is described by two directories ([`CgroupDirs::V1`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

mod cached;

pub use cached::CgroupReader;
pub(crate) use cached::note_limit_written;

/// USER_HZ when `sysconf(_SC_CLK_TCK)` cannot be read: 100 on every Linux architecture we target.
pub(crate) const DEFAULT_CLK_TCK: u64 = 100;

/// The kernel's smallest accepted CFS quota, microseconds.
pub(crate) const MIN_QUOTA_US: u64 = 1_000;

/// What went wrong reading or writing a cgroup file. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// `read` or `write`.
        op: &'static str,
        /// The cgroup file read or written.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A key the format requires is absent.
    #[error("{path}: missing field `{field}`")]
    MissingField {
        /// The key that is missing.
        field: &'static str,
        /// The cgroup file read.
        path: PathBuf,
    },
    /// A value is not a number of the expected kind.
    #[error("{path}: field `{field}` has unparsable value {value:?}")]
    BadValue {
        /// The key (or `value` for single-value files).
        field: &'static str,
        /// The text found.
        value: String,
        /// The cgroup file read.
        path: PathBuf,
    },
    /// The cgroup has no CPU limit file: in v2 the `cpu` controller is not enabled for it (see
    /// `cgroup.subtree_control` of its parent); in v1 it is not in a `cpu` hierarchy.
    #[error("{path}: no CPU limit file (cpu controller not enabled for this cgroup)")]
    NoCpuController {
        /// The cgroup directory.
        path: PathBuf,
    },
    /// A limit that the kernel would refuse or that makes no sense.
    #[error("invalid CPU limit: {0}")]
    InvalidLimit(String),
}

impl CgroupError {
    fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the cgroup (or file) has gone: the container exited between discovery and read.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Cumulative CPU accounting of one cgroup, normalised to nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CpuUsage {
    /// Total CPU time, ns (v1 `cpuacct.usage`, v2 `usage_usec` × 1000).
    pub total_ns: u64,
    /// User CPU time, ns (v1 ticks × 10⁹ / USER_HZ: 10 ms resolution at USER_HZ 100).
    pub user_ns: u64,
    /// System CPU time, ns.
    pub system_ns: u64,
}

/// CFS bandwidth counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Throttling {
    /// Enforcement periods elapsed while the group had runnable tasks.
    pub nr_periods: u64,
    /// Periods in which the group was throttled.
    pub nr_throttled: u64,
    /// Total time throttled, ns.
    pub throttled_ns: u64,
}

/// A CFS bandwidth limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CpuLimit {
    /// Quota per period, µs; `None` = unlimited (v1 `-1`, v2 `max`).
    pub quota_us: Option<u64>,
    /// Period, µs.
    pub period_us: u64,
}

impl CpuLimit {
    /// The limit in CPUs (`None` = unlimited).
    #[must_use]
    pub fn cpus(&self) -> Option<f64> {
        match (self.quota_us, self.period_us) {
            (Some(q), p) if p > 0 => Some(q as f64 / p as f64),
            _ => None,
        }
    }

    /// The quota that gives `cpus` at this limit's period, checked against the kernel's bounds.
    pub fn quota_for(period_us: u64, cpus: f64) -> Result<u64, CgroupError> {
        if !cpus.is_finite() || cpus <= 0.0 {
            return Err(CgroupError::InvalidLimit(format!(
                "cpus must be > 0, got {cpus}"
            )));
        }
        if period_us == 0 {
            return Err(CgroupError::InvalidLimit("period is 0".into()));
        }
        let quota = (cpus * period_us as f64).round();
        if quota < MIN_QUOTA_US as f64 {
            return Err(CgroupError::InvalidLimit(format!(
                "{cpus} CPUs is a quota of {quota} µs per {period_us} µs period, below the \
                 kernel's minimum of {MIN_QUOTA_US} µs"
            )));
        }
        Ok(quota as u64)
    }
}

/// Everything read from one cgroup in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CgroupStats {
    /// Cumulative CPU.
    pub usage: CpuUsage,
    /// The limit, when the cgroup has a CPU controller.
    pub limit: Option<CpuLimit>,
    /// Throttling counters, when the cgroup has a CPU controller with bandwidth control.
    pub throttling: Option<Throttling>,
}

/// Where one cgroup's files live.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "version")]
pub enum CgroupDirs {
    /// cgroup v1: the `cpuacct` directory (accounting) and, when the cgroup is also in a `cpu`
    /// hierarchy, its `cpu` directory (limit, throttling). Both may be the same directory.
    #[serde(rename = "v1")]
    V1 {
        /// Directory with `cpuacct.usage` and `cpuacct.stat`.
        cpuacct: PathBuf,
        /// Directory with `cpu.cfs_quota_us`, `cpu.cfs_period_us`, `cpu.stat`.
        cpu: Option<PathBuf>,
    },
    /// cgroup v2: one directory with `cpu.stat` and (with the cpu controller) `cpu.max`.
    #[serde(rename = "v2")]
    V2 {
        /// The cgroup directory.
        dir: PathBuf,
    },
}

impl CgroupDirs {
    /// Classify an existing cgroup directory by the files it holds: v1 if it has
    /// `cpuacct.usage` or `cpuacct.stat`, v2 if it has `cgroup.controllers` or `cpu.stat`
    /// with `usage_usec`. `None` if it is neither.
    #[must_use]
    pub fn detect(dir: &Path) -> Option<Self> {
        if v1::has_accounting(dir) {
            let cpu = dir
                .join("cpu.cfs_quota_us")
                .is_file()
                .then(|| dir.to_path_buf());
            return Some(Self::V1 {
                cpuacct: dir.to_path_buf(),
                cpu,
            });
        }
        if dir.join("cgroup.controllers").is_file() {
            return Some(Self::V2 {
                dir: dir.to_path_buf(),
            });
        }
        if dir.join("cpu.cfs_quota_us").is_file() {
            // A v1 `cpu`-only directory: no accounting here; callers pair it with cpuacct.
            return None;
        }
        match fs::read_to_string(dir.join("cpu.stat")) {
            Ok(s) if s.contains("usage_usec") => Some(Self::V2 {
                dir: dir.to_path_buf(),
            }),
            _ => None,
        }
    }

    /// The directory whose `cgroup.procs` lists the cgroup's processes.
    #[must_use]
    pub fn procs_dir(&self) -> &Path {
        match self {
            Self::V1 { cpuacct, .. } => cpuacct,
            Self::V2 { dir } => dir,
        }
    }

    /// `1` or `2`.
    #[must_use]
    pub fn version(&self) -> u8 {
        match self {
            Self::V1 { .. } => 1,
            Self::V2 { .. } => 2,
        }
    }

    /// Read accounting, limit and throttling.
    pub fn read(&self, clk_tck: u64) -> Result<CgroupStats, CgroupError> {
        match self {
            Self::V1 { cpuacct, cpu } => {
                let usage = v1::read_usage(cpuacct, clk_tck)?;
                let (limit, throttling) = match cpu {
                    Some(cpu) => (Some(v1::read_limit(cpu)?), v1::read_throttling(cpu)?),
                    None => (None, None),
                };
                Ok(CgroupStats {
                    usage,
                    limit,
                    throttling,
                })
            }
            Self::V2 { dir } => {
                let (usage, throttling) = v2::read_cpu_stat(dir)?;
                let limit = v2::read_limit(dir)?;
                Ok(CgroupStats {
                    usage,
                    limit,
                    throttling,
                })
            }
        }
    }

    /// Set the limit to `cpus` (keeping the current period) and return the limit read back.
    pub fn write_cpus(&self, cpus: f64) -> Result<CpuLimit, CgroupError> {
        match self {
            Self::V1 { cpu: Some(cpu), .. } => {
                let period = v1::read_limit(cpu)?.period_us;
                v1::write_quota(cpu, CpuLimit::quota_for(period, cpus)?)?;
                v1::read_limit(cpu)
            }
            Self::V1 { cpuacct, cpu: None } => Err(CgroupError::NoCpuController {
                path: cpuacct.clone(),
            }),
            Self::V2 { dir } => {
                let current = v2::read_limit(dir)?
                    .ok_or_else(|| CgroupError::NoCpuController { path: dir.clone() })?;
                let quota = CpuLimit::quota_for(current.period_us, cpus)?;
                v2::write_limit(
                    dir,
                    CpuLimit {
                        quota_us: Some(quota),
                        period_us: current.period_us,
                    },
                )?;
                v2::read_limit(dir)?
                    .ok_or_else(|| CgroupError::NoCpuController { path: dir.clone() })
            }
        }
    }

    /// The process ids in the cgroup (first line of `cgroup.procs` onwards).
    pub fn pids(&self) -> Result<Vec<u32>, CgroupError> {
        let path = self.procs_dir().join("cgroup.procs");
        let text = read(&path)?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }
}

/// USER_HZ of this system (`sysconf(_SC_CLK_TCK)`), [`DEFAULT_CLK_TCK`] if it cannot be read.
#[must_use]
pub fn clk_tck() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(v)) if v > 0 => v as u64,
        _ => DEFAULT_CLK_TCK,
    }
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|e| CgroupError::io("read", path, e))
}

fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CgroupError::io("read", path, e)),
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|e| CgroupError::io("write", path, e))
}

fn parse_u64(text: &str, field: &'static str, path: &Path) -> Result<u64, CgroupError> {
    text.trim().parse().map_err(|_| CgroupError::BadValue {
        field,
        value: text.trim().to_string(),
        path: path.to_path_buf(),
    })
}

/// A limit from the texts of its quota (`None`: unlimited) and period; `fields` name the two in
/// errors, as the file does.
fn limit(
    quota: Option<&str>,
    period: &str,
    fields: [&'static str; 2],
    path: &Path,
) -> Result<CpuLimit, CgroupError> {
    Ok(CpuLimit {
        quota_us: quota.map(|q| parse_u64(q, fields[0], path)).transpose()?,
        period_us: parse_u64(period, fields[1], path)?,
    })
}

/// A flat-keyed file (`key value` per line), e.g. `cpuacct.stat` or `cpu.stat`.
fn keyed<'a>(text: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    text.lines().filter_map(|l| {
        let mut it = l.split_whitespace();
        Some((it.next()?, it.next()?))
    })
}

fn field(text: &str, key: &'static str, path: &Path) -> Result<Option<u64>, CgroupError> {
    keyed(text)
        .find(|(k, _)| *k == key)
        .map(|(_, v)| parse_u64(v, key, path))
        .transpose()
}

fn required(text: &str, key: &'static str, path: &Path) -> Result<u64, CgroupError> {
    field(text, key, path)?.ok_or_else(|| CgroupError::MissingField {
        field: key,
        path: path.to_path_buf(),
    })
}

/// cgroup v1 files.
pub(crate) mod v1 {
    use super::{
        CgroupError, CpuLimit, CpuUsage, Path, Throttling, field, fs, io, limit, parse_u64, read,
        read_opt, required, write,
    };

    /// Parse `cpuacct.stat` (`user N` / `system N`, USER_HZ ticks) into (user, system) ns.
    pub(crate) fn parse_cpuacct_stat(
        text: &str,
        clk_tck: u64,
        path: &Path,
    ) -> Result<(u64, u64), CgroupError> {
        let tck = clk_tck.max(1);
        let user = required(text, "user", path)?;
        let system = required(text, "system", path)?;
        let to_ns = |t: u64| t.saturating_mul(1_000_000_000) / tck;
        Ok((to_ns(user), to_ns(system)))
    }

    /// Whether `dir` holds v1 CPU accounting: `cpuacct.usage`, or `cpuacct.stat` alone (some
    /// kernels and container runtimes expose only the tick counters).
    #[must_use]
    pub(crate) fn has_accounting(dir: &Path) -> bool {
        dir.join("cpuacct.usage").is_file() || dir.join("cpuacct.stat").is_file()
    }

    /// Read `cpuacct.usage` and `cpuacct.stat` in `dir`; without `cpuacct.usage` the total is
    /// `user + system` from `cpuacct.stat` (USER_HZ resolution).
    pub(crate) fn read_usage(dir: &Path, clk_tck: u64) -> Result<CpuUsage, CgroupError> {
        let stat_path = dir.join("cpuacct.stat");
        let (user_ns, system_ns) = parse_cpuacct_stat(&read(&stat_path)?, clk_tck, &stat_path)?;
        let usage_path = dir.join("cpuacct.usage");
        let total_ns = match fs::read_to_string(&usage_path) {
            Ok(text) => parse_u64(&text, "value", &usage_path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => user_ns.saturating_add(system_ns),
            Err(e) => return Err(CgroupError::io("read", &usage_path, e)),
        };
        Ok(CpuUsage {
            total_ns,
            user_ns,
            system_ns,
        })
    }

    /// Parse `cpu.cfs_quota_us` (`-1` = unlimited) and `cpu.cfs_period_us`.
    pub(crate) fn parse_limit(
        quota: &str,
        period: &str,
        path: &Path,
    ) -> Result<CpuLimit, CgroupError> {
        let q = quota.trim();
        let unlimited = q.starts_with('-');
        limit(
            (!unlimited).then_some(q),
            period,
            ["cfs_quota_us", "cfs_period_us"],
            path,
        )
    }

    /// Read the CFS limit in the `cpu` directory `dir`.
    pub(crate) fn read_limit(dir: &Path) -> Result<CpuLimit, CgroupError> {
        let qp = dir.join("cpu.cfs_quota_us");
        let quota = read(&qp)?;
        let period = read(&dir.join("cpu.cfs_period_us"))?;
        parse_limit(&quota, &period, &qp)
    }

    /// Write `cpu.cfs_quota_us`.
    pub(crate) fn write_quota(dir: &Path, quota_us: u64) -> Result<(), CgroupError> {
        write(&dir.join("cpu.cfs_quota_us"), &quota_us.to_string())
    }

    /// Parse v1 `cpu.stat` (`nr_periods`, `nr_throttled`, `throttled_time` in ns).
    pub(crate) fn parse_cpu_stat(text: &str, path: &Path) -> Result<Throttling, CgroupError> {
        Ok(Throttling {
            nr_periods: required(text, "nr_periods", path)?,
            nr_throttled: required(text, "nr_throttled", path)?,
            throttled_ns: field(text, "throttled_time", path)?.unwrap_or(0),
        })
    }

    /// Read v1 `cpu.stat` in the `cpu` directory `dir` (`None` if the file is absent).
    pub(crate) fn read_throttling(dir: &Path) -> Result<Option<Throttling>, CgroupError> {
        let path = dir.join("cpu.stat");
        read_opt(&path)?
            .map(|t| parse_cpu_stat(&t, &path))
            .transpose()
    }
}

/// cgroup v2 files.
pub(crate) mod v2 {
    use super::{
        CgroupError, CpuLimit, CpuUsage, Path, Throttling, field, limit, read, read_opt, required,
        write,
    };

    /// Parse v2 `cpu.stat`: usage always; throttling only when the cpu controller adds its keys.
    pub(crate) fn parse_cpu_stat(
        text: &str,
        path: &Path,
    ) -> Result<(CpuUsage, Option<Throttling>), CgroupError> {
        let us = |k| required(text, k, path).map(|v| v.saturating_mul(1_000));
        let usage = CpuUsage {
            total_ns: us("usage_usec")?,
            user_ns: us("user_usec")?,
            system_ns: us("system_usec")?,
        };
        let throttling = match field(text, "nr_periods", path)? {
            Some(nr_periods) => Some(Throttling {
                nr_periods,
                nr_throttled: required(text, "nr_throttled", path)?,
                throttled_ns: field(text, "throttled_usec", path)?
                    .unwrap_or(0)
                    .saturating_mul(1_000),
            }),
            None => None,
        };
        Ok((usage, throttling))
    }

    /// Read `cpu.stat` in `dir`.
    pub(crate) fn read_cpu_stat(dir: &Path) -> Result<(CpuUsage, Option<Throttling>), CgroupError> {
        let path = dir.join("cpu.stat");
        parse_cpu_stat(&read(&path)?, &path)
    }

    /// Parse `cpu.max` (`max 100000` or `50000 100000`; the period may be omitted on write only).
    pub(crate) fn parse_cpu_max(text: &str, path: &Path) -> Result<CpuLimit, CgroupError> {
        let mut it = text.split_whitespace();
        let quota = it.next().ok_or(CgroupError::MissingField {
            field: "quota",
            path: path.to_path_buf(),
        })?;
        let period = it.next().ok_or(CgroupError::MissingField {
            field: "period",
            path: path.to_path_buf(),
        })?;
        limit(
            (quota != "max").then_some(quota),
            period,
            ["quota", "period"],
            path,
        )
    }

    /// Read `cpu.max` in `dir` (`None` when the cpu controller is not enabled there).
    pub(crate) fn read_limit(dir: &Path) -> Result<Option<CpuLimit>, CgroupError> {
        let path = dir.join("cpu.max");
        read_opt(&path)?
            .map(|t| parse_cpu_max(&t, &path))
            .transpose()
    }

    /// Write `cpu.max`.
    pub(crate) fn write_limit(dir: &Path, limit: CpuLimit) -> Result<(), CgroupError> {
        let quota = limit
            .quota_us
            .map_or_else(|| "max".to_string(), |q| q.to_string());
        write(
            &dir.join("cpu.max"),
            &format!("{quota} {}", limit.period_us),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/x")
    }

    #[test]
    fn v1_stat_ticks_to_ns() {
        let (u, s) = v1::parse_cpuacct_stat("user 152\nsystem 3\n", 100, p()).unwrap();
        assert_eq!((u, s), (1_520_000_000, 30_000_000));
        let (u, _) = v1::parse_cpuacct_stat("user 250\nsystem 0\n", 250, p()).unwrap();
        assert_eq!(u, 1_000_000_000);
        let err = v1::parse_cpuacct_stat("user 1\n", 100, p()).unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::MissingField {
                    field: "system",
                    ..
                }
            ),
            "{err}"
        );
        let err = v1::parse_cpuacct_stat("user x\nsystem 1", 100, p()).unwrap_err();
        assert!(err.to_string().contains("\"x\""), "{err}");
    }

    #[test]
    fn v1_limits() {
        let l = v1::parse_limit("-1\n", "100000\n", p()).unwrap();
        assert_eq!((l.quota_us, l.cpus()), (None, None));
        let l = v1::parse_limit("50000\n", "100000\n", p()).unwrap();
        assert_eq!(l.cpus(), Some(0.5));
        let t = v1::parse_cpu_stat(
            "nr_periods 30\nnr_throttled 15\nthrottled_time 1496370130\nnr_bursts 0\n",
            p(),
        )
        .unwrap();
        assert_eq!(
            (t.nr_periods, t.nr_throttled, t.throttled_ns),
            (30, 15, 1_496_370_130)
        );
    }

    #[test]
    fn v2_stat_and_max() {
        let plain =
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\ncore_sched.force_idle_usec 0\n";
        let (u, t) = v2::parse_cpu_stat(plain, p()).unwrap();
        assert_eq!(
            (u.total_ns, u.user_ns, u.system_ns, t),
            (1_500_000, 1_000_000, 500_000, None)
        );
        let full = format!("{plain}nr_periods 4\nnr_throttled 2\nthrottled_usec 70\n");
        let (_, t) = v2::parse_cpu_stat(&full, p()).unwrap();
        assert_eq!(
            t,
            Some(Throttling {
                nr_periods: 4,
                nr_throttled: 2,
                throttled_ns: 70_000
            })
        );
        assert!(matches!(
            v2::parse_cpu_stat("user_usec 1\n", p()),
            Err(CgroupError::MissingField {
                field: "usage_usec",
                ..
            })
        ));
        assert_eq!(
            v2::parse_cpu_max("max 100000\n", p()).unwrap().quota_us,
            None
        );
        assert_eq!(
            v2::parse_cpu_max("150000 100000\n", p()).unwrap().cpus(),
            Some(1.5)
        );
        assert!(v2::parse_cpu_max("", p()).is_err());
    }

    #[test]
    fn quota_bounds() {
        assert_eq!(CpuLimit::quota_for(100_000, 1.5).unwrap(), 150_000);
        assert!(CpuLimit::quota_for(100_000, 0.0).is_err());
        assert!(CpuLimit::quota_for(100_000, f64::NAN).is_err());
        assert!(CpuLimit::quota_for(100_000, 0.005).is_err());
    }

    #[test]
    fn fixture_dirs_read_and_write() {
        let tmp = tempfile::tempdir().unwrap();
        testkit::cgroups::fixture_v1(tmp.path(), "docker/abc", 2_000_000_000, 150, 40, 50_000);
        let acct = tmp.path().join("cpuacct/docker/abc");
        let cpu = tmp.path().join("cpu/docker/abc");
        let dirs = CgroupDirs::V1 {
            cpuacct: acct.clone(),
            cpu: Some(cpu.clone()),
        };
        let s = dirs.read(100).unwrap();
        assert_eq!(s.usage.total_ns, 2_000_000_000);
        assert_eq!(s.usage.user_ns, 1_500_000_000);
        assert_eq!(s.limit.unwrap().cpus(), Some(0.5));
        assert_eq!(s.throttling.unwrap().nr_throttled, 4);
        let l = dirs.write_cpus(1.25).unwrap();
        assert_eq!(l.quota_us, Some(125_000));
        assert_eq!(
            fs::read_to_string(cpu.join("cpu.cfs_quota_us")).unwrap(),
            "125000"
        );

        // Accounting with `cpuacct.stat` only: the total is user + system.
        let stat_only = tmp.path().join("stat-only");
        fs::create_dir_all(&stat_only).unwrap();
        fs::write(stat_only.join("cpuacct.stat"), "user 150\nsystem 40\n").unwrap();
        let d = CgroupDirs::detect(&stat_only).expect("a cpuacct.stat directory is a v1 cgroup");
        let s = d.read(100).unwrap();
        assert_eq!(s.usage.total_ns, 1_900_000_000);
        assert_eq!(
            (s.usage.user_ns, s.usage.system_ns),
            (1_500_000_000, 400_000_000)
        );
        let budget = crate::reader::FdBudget::new(8);
        let mut cached = CgroupReader::new(&d, &budget);
        let mut buf = Vec::new();
        assert_eq!(cached.read(100, &mut buf).unwrap().usage, s.usage);

        let v2dir = testkit::cgroups::fixture_v2(tmp.path(), "t", 10, 6, 4);
        let d2 = CgroupDirs::detect(&v2dir).unwrap();
        assert_eq!(d2.version(), 2);
        assert_eq!(d2.read(100).unwrap().limit, None);
        assert!(matches!(
            d2.write_cpus(1.0),
            Err(CgroupError::NoCpuController { .. })
        ));
        fs::write(v2dir.join("cpu.max"), "max 100000\n").unwrap();
        assert_eq!(d2.write_cpus(0.5).unwrap().quota_us, Some(50_000));
        assert_eq!(
            fs::read_to_string(v2dir.join("cpu.max")).unwrap(),
            "50000 100000"
        );

        let gone = CgroupDirs::V2 {
            dir: tmp.path().join("nope"),
        };
        assert!(gone.read(100).unwrap_err().is_not_found());
    }
}
