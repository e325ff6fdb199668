//! The container of one incarnation: its create body (pure), and the query values of a CRIU
//! restore.

use bollard::models::{ContainerCreateBody, DeviceMapping, HostConfig, ResourcesUlimits};
use std::collections::HashMap;

use crate::checkpoints::Incarnation;
use crate::cli::CONTAINER_CHECKPOINT_DIR;
use crate::container_options::ContainerOptions;
use crate::strategy::Strategy;

/// Everything needed to create the container of one incarnation.
#[derive(Debug, Clone)]
pub struct ContainerSpec<'a> {
    /// The job's UUID (names the container and its labels).
    pub uuid: &'a str,
    /// Image reference to run.
    pub image: &'a str,
    /// Command (empty: the image's).
    pub cmd: &'a [String],
    /// User options.
    pub options: &'a ContainerOptions,
    /// CPU bound.
    pub cpus: Option<f64>,
    /// `QOS_*` variables.
    pub env: Vec<(String, String)>,
    /// Strategy in use.
    pub strategy: Strategy,
    /// The incarnation this container restores, if any (its checkpoint and mount).
    pub inc: Option<&'a Incarnation>,
    /// `qos.owner` label value.
    pub owner: String,
}

/// Percent-encodes a query value (everything but unreserved characters and `/`).
pub(super) fn query_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The create body of one incarnation's container (pure, for tests).
#[must_use]
pub fn container_body(spec: &ContainerSpec<'_>) -> ContainerCreateBody {
    let o = spec.options;
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.extend(o.env.iter().cloned());
    let mut labels: HashMap<String, String> = o.labels.clone().into_iter().collect();
    labels.insert("qos.uuid".into(), spec.uuid.to_owned());
    labels.insert("qos.strategy".into(), spec.strategy.as_str().to_owned());
    labels.insert("qos.owner".into(), spec.owner.clone());
    let mut binds = o.binds.clone();
    if let Some(inc) = spec.inc {
        labels.insert("qos.incarnation".into(), inc.seq.to_string());
        labels.insert("qos.checkpoint-dir".into(), inc.dir.display().to_string());
        if let Some(r) = inc.restored_from {
            labels.insert("qos.restored-from".into(), r.to_string());
        }
        if spec.strategy == Strategy::App {
            binds.push(format!(
                "{}:{CONTAINER_CHECKPOINT_DIR}:rw",
                inc.dir.display()
            ));
        }
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "cpus is validated finite in (0, 1024]"
    )]
    let nano_cpus = spec.cpus.map(|c| (c * 1e9).round() as i64);
    let devices = o
        .devices
        .iter()
        .map(|d| {
            let mut p = d.splitn(3, ':');
            let host = p.next().unwrap_or_default().to_owned();
            let ctr = p.next().map_or_else(|| host.clone(), str::to_owned);
            DeviceMapping {
                path_on_host: Some(host),
                path_in_container: Some(ctr),
                cgroup_permissions: Some(p.next().unwrap_or("rwm").to_owned()),
            }
        })
        .collect::<Vec<_>>();
    let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let host_config = HostConfig {
        nano_cpus,
        network_mode: Some(o.network.clone().unwrap_or_else(|| "host".into())),
        binds: (!binds.is_empty()).then_some(binds),
        privileged: o.privileged.then_some(true),
        memory: o.memory,
        memory_swap: o.memory_swap,
        memory_reservation: o.memory_reservation,
        shm_size: o.shm_size,
        cap_add: some_vec(&o.cap_add),
        cap_drop: some_vec(&o.cap_drop),
        devices: (!devices.is_empty()).then_some(devices),
        extra_hosts: some_vec(&o.extra_hosts),
        security_opt: some_vec(&o.security_opt),
        ulimits: (!o.ulimits.is_empty()).then(|| {
            o.ulimits
                .iter()
                .map(|(name, soft, hard)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                })
                .collect()
        }),
        pids_limit: o.pids_limit,
        readonly_rootfs: o.read_only.then_some(true),
        tmpfs: (!o.tmpfs.is_empty()).then(|| o.tmpfs.clone().into_iter().collect()),
        init: o.init,
        dns: some_vec(&o.dns),
        group_add: some_vec(&o.group_add),
        ipc_mode: o.ipc.clone(),
        pid_mode: o.pid.clone(),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.to_owned()),
        cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.to_vec()),
        entrypoint: o.entrypoint.clone().map(|e| vec![e]),
        env: Some(env),
        labels: Some(labels),
        user: o.user.clone(),
        working_dir: o.workdir.clone(),
        hostname: o.hostname.clone(),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn query_values() {
        assert_eq!(
            query_encode("/var/lib/x y/inc-000001/criu"),
            "/var/lib/x%20y/inc-000001/criu"
        );
        assert_eq!(query_encode("a&b=c"), "a%26b%3Dc");
    }

    #[test]
    fn create_body() {
        let mut o = ContainerOptions::default();
        o.apply_opt("memory=256m", "t").unwrap();
        o.apply_opt("label=team=x", "t").unwrap();
        o.apply_opt("volume=/h:/c:ro", "t").unwrap();
        o.apply_opt("device=/dev/fuse", "t").unwrap();
        o.env.push("A=1".into());
        let inc = Incarnation {
            seq: 3,
            dir: PathBuf::from("/ck/u1/inc-000003"),
            restored_from: Some(2),
            restored_bytes: 10,
        };
        let cmd = vec!["/qos-counter".to_owned(), "100".to_owned()];
        let spec = ContainerSpec {
            uuid: "u1",
            image: "img:1",
            cmd: &cmd,
            options: &o,
            cpus: Some(1.5),
            env: vec![("QOS_UUID".into(), "u1".into())],
            strategy: Strategy::App,
            inc: Some(&inc),
            owner: "b:1:2".into(),
        };
        let b = container_body(&spec);
        let h = b.host_config.as_ref().unwrap();
        assert_eq!(h.nano_cpus, Some(1_500_000_000));
        assert_eq!(h.network_mode.as_deref(), Some("host"));
        assert_eq!(h.memory, Some(256 << 20));
        assert_eq!(
            h.binds.as_deref().unwrap(),
            ["/h:/c:ro", "/ck/u1/inc-000003:/qos-checkpoint:rw"]
        );
        let dev = &h.devices.as_ref().unwrap()[0];
        assert_eq!(dev.path_in_container.as_deref(), Some("/dev/fuse"));
        let labels = b.labels.as_ref().unwrap();
        assert_eq!(labels["qos.uuid"], "u1");
        assert_eq!(labels["qos.incarnation"], "3");
        assert_eq!(labels["qos.restored-from"], "2");
        assert_eq!(labels["qos.strategy"], "app");
        assert_eq!(labels["qos.checkpoint-dir"], "/ck/u1/inc-000003");
        assert_eq!(labels["team"], "x");
        assert_eq!(b.env.as_deref().unwrap(), ["QOS_UUID=u1", "A=1"]);
        assert_eq!(b.cmd.as_deref().unwrap(), cmd.as_slice());

        // criu: nothing mounted; no cpus: no bound.
        let spec = ContainerSpec {
            strategy: Strategy::Criu,
            cpus: None,
            cmd: &[],
            ..spec
        };
        let b = container_body(&spec);
        let h = b.host_config.as_ref().unwrap();
        assert_eq!(h.binds.as_deref().unwrap(), ["/h:/c:ro"]);
        assert_eq!(h.nano_cpus, None);
        assert!(b.cmd.is_none());
    }
}
