//! Container options: the Marathon `container` object the launcher hands over in `QOS_CONTAINER`
//! (volumes, network, privileged, `docker.parameters`, `forcePullImage`) and `--docker-opt
//! KEY=VALUE` flags, both parsed into one [`ContainerOptions`].
//!
//! Keys are docker run's long option names (a leading `--` and the short forms `v`, `e`, `l`,
//! `m`, `u`, `w`, `h` are accepted), as Marathon's `docker.parameters` use them. Options shell-trap
//! owns are refused: the CPU bound (`cpus`, `cpu-quota`, `cpu-period`), the name, `rm`,
//! `restart`, `detach`, `interactive`, `tty`. Unknown keys are refused, naming the supported ones,
//! so nothing is silently dropped (the thesis dropped everything but the volumes).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::SetupError;

/// Everything about the container besides image, command, name, CPU bound and checkpoint mount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerOptions {
    /// The image `QOS_CONTAINER` names (informational: the command line's image runs).
    pub image: Option<String>,
    /// Binds `host:container[:ro|rw]`.
    pub binds: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    /// Container labels (`--docker-opt label=k=v`, Marathon's `labels`).
    pub labels: BTreeMap<String, String>,
    /// Network mode; `None` means `host`.
    pub network: Option<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// Memory limit, bytes.
    pub memory: Option<i64>,
    /// Memory + swap limit, bytes (`-1` unlimited).
    pub memory_swap: Option<i64>,
    /// Memory soft limit, bytes.
    pub memory_reservation: Option<i64>,
    /// `/dev/shm` size, bytes.
    pub shm_size: Option<i64>,
    /// `--user`.
    pub user: Option<String>,
    /// `--workdir`.
    pub workdir: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--entrypoint` (one word, as docker run takes it).
    pub entrypoint: Option<String>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--device host[:container[:perms]]`.
    pub devices: Vec<String>,
    /// `--add-host name:ip`.
    pub extra_hosts: Vec<String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--ulimit name=soft[:hard]`.
    pub ulimits: Vec<(String, i64, i64)>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--tmpfs path[:options]`.
    pub tmpfs: BTreeMap<String, String>,
    /// `--init`.
    pub init: Option<bool>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--group-add`.
    pub group_add: Vec<String>,
    /// `--ipc`.
    pub ipc: Option<String>,
    /// `--pid`.
    pub pid: Option<String>,
    /// Marathon `forcePullImage`: pull even when the image is present.
    pub force_pull: bool,
}

/// The keys `--docker-opt` accepts.
pub const SUPPORTED_KEYS: &str = "volume (v), env (e), label (l), network (net), privileged, \
     memory (m), memory-swap, memory-reservation, shm-size, user (u), workdir (w), hostname (h), \
     entrypoint, cap-add, cap-drop, device, add-host, security-opt, ulimit, pids-limit, read-only, \
     tmpfs, init, dns, group-add, ipc, pid";

/// Parses a size: an integer or decimal with an optional unit `b`, `k`, `m`, `g`, `t` (binary
/// multiples, as docker run reads them).
///
/// # Errors
/// A message saying what a size looks like.
pub fn parse_size(text: &str) -> Result<i64, String> {
    let t = text.trim().to_ascii_lowercase();
    // "10kb" → "10k"; a lone "b" unit ("512b") stays and means bytes.
    let t = t
        .strip_suffix('b')
        .filter(|r| r.ends_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(t.as_str());
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 512m, 2g or 1048576"))?;
    #[expect(
        clippy::cast_precision_loss,
        reason = "multipliers are exact powers of two"
    )]
    let bytes = v * mul as f64;
    if !(0.0..9.0e18).contains(&bytes) {
        return Err(format!("{text:?} is not a size like 512m, 2g or 1048576"));
    }
    #[expect(clippy::cast_possible_truncation, reason = "range checked above")]
    Ok(bytes.round() as i64)
}

fn parse_bool(key: &str, v: Option<&str>) -> Result<bool, String> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(format!("{key}={other}: expected true or false")),
    }
}

fn non_empty(key: &str, v: Option<&str>) -> Result<String, String> {
    match v {
        Some(s) if !s.is_empty() && !s.contains(['\n', '\0']) => Ok(s.to_owned()),
        _ => Err(format!("{key} needs a value ({key}=VALUE)")),
    }
}

fn parse_ulimit(v: &str) -> Result<(String, i64, i64), String> {
    let (name, limits) = v
        .split_once('=')
        .ok_or_else(|| format!("ulimit {v:?}: expected name=soft[:hard]"))?;
    let num = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("ulimit {v:?}: {s:?} is not a number"))
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => {
            let n = num(limits)?;
            (n, n)
        }
    };
    Ok((name.to_owned(), soft, hard))
}

fn check_bind(v: &str) -> Result<String, String> {
    let parts: Vec<&str> = v.split(':').collect();
    let ok = match parts.as_slice() {
        [host, ctr] => host.starts_with('/') && ctr.starts_with('/'),
        [host, ctr, mode] => {
            host.starts_with('/')
                && ctr.starts_with('/')
                && mode.split(',').all(|m| {
                    matches!(
                        m,
                        "ro" | "rw"
                            | "z"
                            | "Z"
                            | "shared"
                            | "slave"
                            | "private"
                            | "rshared"
                            | "rslave"
                            | "rprivate"
                            | "nocopy"
                    )
                })
        }
        _ => false,
    };
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "volume {v:?}: expected /host/path:/container/path[:ro|rw] (named volumes are not \
             supported: the job may run on another agent after a restart)"
        ))
    }
}

impl ContainerOptions {
    /// Applies one `KEY=VALUE` option (from `source`, for the error message).
    ///
    /// # Errors
    /// [`SetupError::Invalid`] for an unknown, owned or malformed option.
    pub fn apply_opt(&mut self, opt: &str, source: &str) -> Result<(), SetupError> {
        let (k, v) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        self.apply(k, v)
            .map_err(|reason| SetupError::invalid(source, format!("{opt:?}: {reason}")))
    }

    fn apply(&mut self, key: &str, v: Option<&str>) -> Result<(), String> {
        let key = key.trim().trim_start_matches("--").trim_start_matches('-');
        match key {
            "volume" | "v" => self.binds.push(check_bind(&non_empty(key, v)?)?),
            "env" | "e" => {
                let e = non_empty(key, v)?;
                let name = e.split('=').next().unwrap_or_default();
                if name.is_empty() || name.starts_with("QOS_") {
                    return Err(format!(
                        "env {e:?}: expected NAME=value (names starting with QOS_ are set by \
                         shell-trap)"
                    ));
                }
                self.env.push(e);
            }
            "label" | "l" => {
                let l = non_empty(key, v)?;
                let (lk, lv) = l.split_once('=').unwrap_or((&l, ""));
                if lk.is_empty() || lk.starts_with("qos.") {
                    return Err(format!(
                        "label {l:?}: expected key=value (keys starting with qos. are set by \
                         shell-trap)"
                    ));
                }
                self.labels.insert(lk.to_owned(), lv.to_owned());
            }
            "network" | "net" => self.network = Some(non_empty(key, v)?),
            "privileged" => self.privileged = parse_bool(key, v)?,
            "read-only" => self.read_only = parse_bool(key, v)?,
            "init" => self.init = Some(parse_bool(key, v)?),
            "memory" | "m" => self.memory = Some(parse_size(&non_empty(key, v)?)?),
            "memory-swap" => {
                let s = non_empty(key, v)?;
                self.memory_swap = Some(if s == "-1" { -1 } else { parse_size(&s)? });
            }
            "memory-reservation" => {
                self.memory_reservation = Some(parse_size(&non_empty(key, v)?)?);
            }
            "shm-size" => self.shm_size = Some(parse_size(&non_empty(key, v)?)?),
            "user" | "u" => self.user = Some(non_empty(key, v)?),
            "workdir" | "w" => self.workdir = Some(non_empty(key, v)?),
            "hostname" | "h" => self.hostname = Some(non_empty(key, v)?),
            "entrypoint" => self.entrypoint = Some(non_empty(key, v)?),
            "cap-add" => self.cap_add.push(non_empty(key, v)?),
            "cap-drop" => self.cap_drop.push(non_empty(key, v)?),
            "device" => self.devices.push(non_empty(key, v)?),
            "add-host" => self.extra_hosts.push(non_empty(key, v)?),
            "security-opt" => self.security_opt.push(non_empty(key, v)?),
            "ulimit" => self.ulimits.push(parse_ulimit(&non_empty(key, v)?)?),
            "pids-limit" => {
                let s = non_empty(key, v)?;
                self.pids_limit = Some(
                    s.parse()
                        .map_err(|_| format!("pids-limit {s:?} is not a number"))?,
                );
            }
            "tmpfs" => {
                let t = non_empty(key, v)?;
                let (path, o) = t.split_once(':').unwrap_or((&t, ""));
                self.tmpfs.insert(path.to_owned(), o.to_owned());
            }
            "dns" => self.dns.push(non_empty(key, v)?),
            "group-add" => self.group_add.push(non_empty(key, v)?),
            "ipc" => self.ipc = Some(non_empty(key, v)?),
            "pid" => self.pid = Some(non_empty(key, v)?),
            "cpus" | "cpu-quota" | "cpu-period" | "nano-cpus" | "cpuset-cpus" | "cpu-shares"
            | "c" => {
                return Err(
                    "shell-trap sets the CPU bound itself from --cpus (MARATHON_APP_RESOURCE_CPUS)"
                        .into(),
                );
            }
            "name" => return Err("the container is named after the job's UUID".into()),
            "rm" => return Err("shell-trap removes the container itself".into()),
            "restart" => {
                return Err(
                    "Marathon restarts the task; a Docker restart policy would fight it".into(),
                );
            }
            "detach" | "d" | "interactive" | "i" | "tty" | "t" => {
                return Err("shell-trap attaches to the container itself".into());
            }
            other => {
                return Err(format!(
                    "unsupported option {other:?}; supported: {SUPPORTED_KEYS}"
                ));
            }
        }
        Ok(())
    }
}

/// Parses the Marathon `container` object handed over in `QOS_CONTAINER`.
///
/// # Errors
/// [`SetupError::Invalid`] (flag `QOS_CONTAINER`) for malformed JSON or unsupported parameters.
pub fn parse_marathon_container(json: &str) -> Result<ContainerOptions, SetupError> {
    const SRC: &str = "QOS_CONTAINER";
    let bad = |why: String| SetupError::invalid(SRC, why);
    let v: Value = serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(c) = &v else {
        return Err(bad("must be a JSON object (Marathon's `container`)".into()));
    };
    let mut o = ContainerOptions::default();
    let docker = c.get("docker").and_then(Value::as_object);
    if let Some(d) = docker {
        o.image = d.get("image").and_then(Value::as_str).map(str::to_owned);
        o.privileged = d
            .get("privileged")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        o.force_pull = d
            .get("forcePullImage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        match d
            .get("network")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("HOST") => {}
            Some("BRIDGE") => o.network = Some("bridge".into()),
            Some("NONE") => o.network = Some("none".into()),
            Some(other) => {
                tracing::warn!(
                    "QOS_CONTAINER: docker.network {other} is not supported here; using host \
                     networking"
                );
            }
        }
        if let Some(params) = d.get("parameters").and_then(Value::as_array) {
            for (i, p) in params.iter().enumerate() {
                let key = p.get("key").and_then(Value::as_str).unwrap_or_default();
                let value = p.get("value").and_then(Value::as_str);
                let text = match value {
                    Some(val) => format!("{key}={val}"),
                    None => key.to_owned(),
                };
                o.apply_opt(&text, &format!("QOS_CONTAINER docker.parameters[{i}]"))?;
            }
        }
    }
    if let Some(vols) = c.get("volumes").and_then(Value::as_array) {
        for (i, vol) in vols.iter().enumerate() {
            let ctr = vol.get("containerPath").and_then(Value::as_str);
            let host = vol.get("hostPath").and_then(Value::as_str);
            let ro = vol
                .get("mode")
                .and_then(Value::as_str)
                .is_some_and(|m| m.eq_ignore_ascii_case("RO"));
            match (host, ctr) {
                (Some(h), Some(cp)) => {
                    let bind = format!("{h}:{cp}:{}", if ro { "ro" } else { "rw" });
                    o.binds.push(
                        check_bind(&bind)
                            .map_err(|e| SetupError::invalid(format!("{SRC} volumes[{i}]"), e))?,
                    );
                }
                _ => tracing::warn!(
                    "QOS_CONTAINER volumes[{i}] has no hostPath (persistent or external volume): \
                     not mounted"
                ),
            }
        }
    }
    let has_ports = c
        .get("portMappings")
        .or_else(|| docker.and_then(|d| d.get("portMappings")))
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty());
    if has_ports && o.network.is_some() {
        tracing::warn!(
            "QOS_CONTAINER portMappings are not published by shell-trap; use host networking"
        );
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("10kb").unwrap(), 10 << 10);
        for bad in ["", "x", "-1", "1q", "m"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_opts() {
        let mut o = ContainerOptions::default();
        for opt in [
            "volume=/h:/c:ro",
            "--env=A=1",
            "l=team=x",
            "memory=1g",
            "memory-swap=-1",
            "user=1000:1000",
            "privileged",
            "ulimit=nofile=1024:2048",
            "tmpfs=/run:size=64m",
            "init=false",
        ] {
            o.apply_opt(opt, "--docker-opt").unwrap();
        }
        assert_eq!(o.binds, ["/h:/c:ro"]);
        assert_eq!(o.env, ["A=1"]);
        assert_eq!(o.labels["team"], "x");
        assert_eq!(o.memory, Some(1 << 30));
        assert_eq!(o.memory_swap, Some(-1));
        assert!(o.privileged);
        assert_eq!(o.ulimits, [("nofile".to_owned(), 1024, 2048)]);
        assert_eq!(o.tmpfs["/run"], "size=64m");
        assert_eq!(o.init, Some(false));
    }

    #[test]
    fn refused_opts_say_why() {
        for (opt, why) in [
            ("cpus=2", "CPU bound"),
            ("name=x", "UUID"),
            ("rm", "removes"),
            ("restart=always", "Marathon"),
            ("foo=1", "supported"),
            ("volume=data:/c", "named volumes"),
            ("env=QOS_UUID=x", "QOS_"),
            ("label=qos.uuid=x", "qos."),
            ("memory", "needs a value"),
            ("privileged=maybe", "true or false"),
        ] {
            let e = ContainerOptions::default()
                .apply_opt(opt, "--docker-opt")
                .unwrap_err()
                .to_string();
            assert!(e.contains(why) && e.contains("--docker-opt"), "{opt}: {e}");
        }
    }

    #[test]
    fn marathon_container() {
        let o = parse_marathon_container(
            r#"{"type":"DOCKER","docker":{"image":"serlophug/openmplinpack","network":"BRIDGE",
                "privileged":true,"forcePullImage":true,
                "parameters":[{"key":"memory","value":"512m"},{"key":"label","value":"a=b"}]},
                "volumes":[{"containerPath":"/c","hostPath":"/h","mode":"RW"},
                           {"containerPath":"/p","persistent":{"size":10},"mode":"RW"}]}"#,
        )
        .unwrap();
        assert_eq!(o.image.as_deref(), Some("serlophug/openmplinpack"));
        assert_eq!(o.network.as_deref(), Some("bridge"));
        assert!(o.privileged && o.force_pull);
        assert_eq!(o.memory, Some(512 << 20));
        assert_eq!(o.labels["a"], "b");
        assert_eq!(o.binds, ["/h:/c:rw"]);
        let e =
            parse_marathon_container(r#"{"docker":{"parameters":[{"key":"cpus","value":"4"}]}}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("docker.parameters[0]"), "{e}");
        assert!(parse_marathon_container("[]").is_err());
        assert!(parse_marathon_container("{").is_err());
    }
}
