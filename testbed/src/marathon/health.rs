//! Marathon health checks, really executed against the running task (`healthChecks`: `HTTP`,
//! `HTTPS`, `TCP`, `COMMAND` and their `MESOS_*` forms).
//!
//! As Marathon (`docs/docs/health-checks.md`, `core/health`): checking starts when the task runs;
//! every `intervalSeconds` (60) a probe is made with `timeoutSeconds` (20); an HTTP check passes
//! with a status from 200 to 399 (`ignoreHttp1xx` aside), a TCP check when the port accepts a
//! connection, a command check when it exits 0. A task's result for each check is kept as
//! Marathon shows it in `healthCheckResults` (`alive`, `consecutiveFailures`, `firstSuccess`,
//! `lastSuccess`, `lastFailure`, `lastFailureCause`, `instanceId`). Failures within
//! `gracePeriodSeconds` (300) of the start do not count, unless the check has passed once; after
//! `maxConsecutiveFailures` (3; 0 = never) counted failures in a row the task is killed, and the
//! app's controller launches a replacement. An app with health checks counts its tasks in
//! `tasksHealthy` / `tasksUnhealthy`, and its deployments end only once the new tasks are healthy.
//!
//! The port is the task's host port at `portIndex` (0 by default), or `port`. A command check
//! runs `/bin/sh -c <value>` in the task's sandbox with `HOST`, `PORT0…`, `PORT`, `PORTS`,
//! `MESOS_TASK_ID`, `MARATHON_APP_ID` and `MESOS_SANDBOX` (for a Docker task, on the agent rather
//! than inside the container — a documented simplification).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value, json};

/// What a check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// `GET <scheme>://host:port<path>`.
    Http {
        /// `https` for `HTTPS`/`MESOS_HTTPS`.
        https: bool,
        /// Request path (`/`).
        path: String,
        /// Which host port.
        port: PortRef,
        /// 1xx answers count as passed.
        ignore_1xx: bool,
    },
    /// A TCP connection.
    Tcp {
        /// Which host port.
        port: PortRef,
    },
    /// `/bin/sh -c <value>`, exit 0.
    Command(String),
}

/// A check's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortRef {
    /// `portIndex` into the task's host ports.
    Index(usize),
    /// A fixed `port`.
    Fixed(u16),
}

/// One health check of an app.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Check {
    pub(crate) probe: Probe,
    pub(crate) grace: Duration,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    /// 0: never kill.
    pub(crate) max_failures: u64,
}

/// A task's state for one check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Health {
    pub(crate) alive: bool,
    pub(crate) consecutive_failures: u64,
    pub(crate) first_success: Option<String>,
    pub(crate) last_success: Option<String>,
    pub(crate) last_failure: Option<String>,
    pub(crate) last_failure_cause: Option<String>,
}

impl Health {
    /// The `healthCheckResults` entry.
    pub(crate) fn json(&self, instance_id: &str) -> Value {
        json!({
            "alive": self.alive,
            "consecutiveFailures": self.consecutive_failures,
            "firstSuccess": self.first_success,
            "lastSuccess": self.last_success,
            "lastFailure": self.last_failure,
            "lastFailureCause": self.last_failure_cause,
            "instanceId": instance_id,
        })
    }
}

/// Where a task can be probed.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) task_id: String,
    pub(crate) app_id: String,
    pub(crate) host: String,
    pub(crate) ports: Vec<u16>,
    pub(crate) sandbox: PathBuf,
}

/// The checks of an app definition (as normalised; unknown protocols are skipped).
pub(crate) fn checks(def: &Map<String, Value>) -> Vec<Check> {
    let Some(Value::Array(list)) = def.get("healthChecks") else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|c| {
            let secs = |k: &str, d: u64| {
                Duration::from_secs(c.get(k).and_then(Value::as_u64).unwrap_or(d))
            };
            let port = match (c.get("port").and_then(Value::as_u64), c.get("portIndex")) {
                (Some(p), _) => PortRef::Fixed(u16::try_from(p).ok()?),
                (None, i) => PortRef::Index(
                    i.and_then(Value::as_u64)
                        .and_then(|i| usize::try_from(i).ok())
                        .unwrap_or(0),
                ),
            };
            let protocol = c.get("protocol").and_then(Value::as_str).unwrap_or("HTTP");
            let probe = match protocol {
                "HTTP" | "HTTPS" | "MESOS_HTTP" | "MESOS_HTTPS" => Probe::Http {
                    https: protocol.ends_with("HTTPS"),
                    path: c
                        .get("path")
                        .and_then(Value::as_str)
                        .unwrap_or("/")
                        .to_owned(),
                    port,
                    ignore_1xx: c
                        .get("ignoreHttp1xx")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                },
                "TCP" | "MESOS_TCP" => Probe::Tcp { port },
                "COMMAND" => Probe::Command(
                    c.get("command")
                        .and_then(|x| x.get("value"))
                        .and_then(Value::as_str)?
                        .to_owned(),
                ),
                _ => return None,
            };
            Some(Check {
                probe,
                grace: secs("gracePeriodSeconds", 300),
                interval: secs("intervalSeconds", 60).max(Duration::from_millis(100)),
                timeout: secs("timeoutSeconds", 20).max(Duration::from_millis(100)),
                max_failures: c
                    .get("maxConsecutiveFailures")
                    .and_then(Value::as_u64)
                    .unwrap_or(3),
            })
        })
        .collect()
}

fn port_of(port: PortRef, target: &Target) -> Result<u16, String> {
    match port {
        PortRef::Fixed(p) => Ok(p),
        PortRef::Index(i) => target
            .ports
            .get(i)
            .copied()
            .ok_or_else(|| format!("the task has no port at index {i}")),
    }
}

/// Runs one probe; `Err` is the failure's cause as Marathon words it.
pub(crate) async fn probe(check: &Check, target: &Target) -> Result<(), String> {
    let run = async {
        match &check.probe {
            Probe::Http {
                https,
                path,
                port,
                ignore_1xx,
            } => {
                let port = port_of(*port, target)?;
                let scheme = if *https { "https" } else { "http" };
                let url = format!("{scheme}://{}:{port}{path}", target.host);
                let client = reqwest::Client::builder()
                    .timeout(check.timeout)
                    .build()
                    .map_err(|e| e.to_string())?;
                let status = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?
                    .status()
                    .as_u16();
                let ok =
                    (200..400).contains(&status) || (*ignore_1xx && (100..200).contains(&status));
                if ok {
                    Ok(())
                } else {
                    Err(format!("HTTP {status} from {url}"))
                }
            }
            Probe::Tcp { port } => {
                let port = port_of(*port, target)?;
                tokio::net::TcpStream::connect((target.host.as_str(), port))
                    .await
                    .map(drop)
                    .map_err(|e| format!("TCP {}:{port}: {e}", target.host))
            }
            Probe::Command(value) => {
                let mut cmd = tokio::process::Command::new("/bin/sh");
                cmd.arg("-c")
                    .arg(value)
                    .current_dir(&target.sandbox)
                    .env("HOST", &target.host)
                    .env("MESOS_TASK_ID", &target.task_id)
                    .env("MARATHON_APP_ID", &target.app_id)
                    .env("MESOS_SANDBOX", &target.sandbox)
                    .env(
                        "PORTS",
                        target
                            .ports
                            .iter()
                            .map(u16::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    )
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true);
                for (i, p) in target.ports.iter().enumerate() {
                    cmd.env(format!("PORT{i}"), p.to_string());
                }
                if let Some(p) = target.ports.first() {
                    cmd.env("PORT", p.to_string());
                }
                let status = cmd.status().await.map_err(|e| e.to_string())?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("command exited with {status}"))
                }
            }
        }
    };
    match tokio::time::timeout(check.timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {:?}", check.timeout)),
    }
}

/// Records one probe's result; returns whether the task must now be killed.
pub(crate) fn record(
    h: &mut Health,
    check: &Check,
    result: Result<(), String>,
    in_grace: bool,
    now: &str,
) -> bool {
    match result {
        Ok(()) => {
            h.alive = true;
            h.consecutive_failures = 0;
            h.last_success = Some(now.to_owned());
            if h.first_success.is_none() {
                h.first_success = Some(now.to_owned());
            }
            false
        }
        Err(cause) => {
            h.last_failure = Some(now.to_owned());
            h.last_failure_cause = Some(cause);
            // Within the grace period, failures do not count until a first success.
            if in_grace && h.first_success.is_none() {
                return false;
            }
            h.alive = false;
            h.consecutive_failures += 1;
            check.max_failures > 0 && h.consecutive_failures >= check.max_failures
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_protocols() {
        let def = json!({"healthChecks": [
            {"protocol": "HTTP", "path": "/health"},
            {"protocol": "MESOS_TCP", "portIndex": 1, "intervalSeconds": 5},
            {"protocol": "COMMAND", "command": {"value": "true"}, "maxConsecutiveFailures": 0},
            {"protocol": "MESOS_HTTPS", "port": 8443}
        ]});
        let c = checks(def.as_object().unwrap());
        assert_eq!(c.len(), 4);
        assert_eq!(
            (c[0].grace, c[0].interval, c[0].timeout, c[0].max_failures),
            (
                Duration::from_secs(300),
                Duration::from_secs(60),
                Duration::from_secs(20),
                3
            )
        );
        assert_eq!(
            c[1].probe,
            Probe::Tcp {
                port: PortRef::Index(1)
            }
        );
        assert_eq!(c[2].max_failures, 0);
        assert!(matches!(
            c[3].probe,
            Probe::Http {
                https: true,
                port: PortRef::Fixed(8443),
                ..
            }
        ));
    }

    #[test]
    fn grace_then_counted_failures_then_kill() {
        let check = Check {
            probe: Probe::Command("false".into()),
            grace: Duration::from_secs(1),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            max_failures: 2,
        };
        let mut h = Health::default();
        assert!(!record(&mut h, &check, Err("x".into()), true, "t0"));
        assert_eq!(h.consecutive_failures, 0, "in grace, not counted");
        assert!(!record(&mut h, &check, Err("x".into()), false, "t1"));
        assert!(
            record(&mut h, &check, Err("x".into()), false, "t2"),
            "two in a row: kill"
        );
        assert!(!h.alive);
        assert!(!record(&mut h, &check, Ok(()), false, "t3"));
        assert!(h.alive && h.consecutive_failures == 0);
        assert_eq!(h.first_success.as_deref(), Some("t3"));
    }
}
