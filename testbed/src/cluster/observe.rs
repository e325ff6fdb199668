//! What an agent shows of its tasks: `/monitor/statistics` (cgroup counters per running task) and
//! `/state` (tasks, resources, cgroup and recovery notes).

use super::*;

impl Cluster {
    /// `/monitor/statistics` of one agent: one entry per running task.
    pub(crate) fn statistics(&self, agent: usize) -> Vec<ExecutorStatistics> {
        struct Snap {
            id: String,
            framework_id: String,
            executor_name: String,
            cpus: f64,
            mem: f64,
            pid: Option<u32>,
            cgroup: Option<Cgroup>,
        }
        let snaps: Vec<Snap> = {
            let st = self.lock();
            let mut v: Vec<Snap> = st
                .live
                .iter()
                .filter(|(_, l)| l.agent == agent && l.state != TaskState::Staging)
                .map(|(id, l)| Snap {
                    id: id.clone(),
                    framework_id: l.framework_id.clone(),
                    executor_name: l.executor_name.clone(),
                    cpus: l.resources.cpus,
                    mem: l.resources.mem,
                    pid: l.pid,
                    cgroup: l.cgroup.clone(),
                })
                .collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v
        };
        snaps
            .into_iter()
            .map(|s| {
                let mut stats = ResourceStatistics {
                    timestamp: epoch_secs(Utc::now()),
                    cpus_limit: Some(s.cpus),
                    mem_limit_bytes: Some((s.mem * 1_048_576.0) as u64),
                    ..ResourceStatistics::default()
                };
                if let Some(g) = &s.cgroup {
                    let c = g.stats();
                    stats.cpus_user_time_secs = Some(c.user_secs);
                    stats.cpus_system_time_secs = Some(c.system_secs);
                    stats.cpus_nr_periods = c.nr_periods;
                    stats.cpus_nr_throttled = c.nr_throttled;
                    stats.cpus_throttled_time_secs = c.throttled_secs;
                    stats.mem_rss_bytes = c.rss_bytes;
                    stats.processes = Some(c.processes);
                } else if let Some(pid) = s.pid {
                    let (u, sy) = cgroups::proc_cpu_secs(pid).unwrap_or((0.0, 0.0));
                    stats.cpus_user_time_secs = Some(u);
                    stats.cpus_system_time_secs = Some(sy);
                    stats.mem_rss_bytes = cgroups::proc_rss_bytes(pid);
                }
                ExecutorStatistics {
                    executor_id: s.id.clone(),
                    executor_name: s.executor_name,
                    framework_id: s.framework_id,
                    source: s.id,
                    statistics: stats,
                    extra: Map::new(),
                }
            })
            .collect()
    }

    /// `/state` of one agent, in the shape of the Mesos agent's (the fields that matter).
    pub(crate) fn agent_state(&self, agent: usize) -> Value {
        let a = &self.agents[agent];
        let st = self.lock();
        let used = st.used[agent];
        let mut frameworks: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        let mut ids: Vec<&String> = st.live.keys().collect();
        ids.sort();
        for id in ids {
            let l = &st.live[id];
            if l.agent != agent {
                continue;
            }
            let resources = json!({"cpus": l.resources.cpus, "mem": l.resources.mem, "disk": l.resources.disk,
                "ports": ports_ranges(&l.ports)});
            let mut task = json!({
                "id": id, "name": id, "framework_id": l.framework_id, "executor_id": "",
                "slave_id": a.id, "state": l.state.mesos_name(), "resources": resources,
            });
            if !l.labels.is_empty() {
                task["labels"] = l
                    .labels
                    .iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect();
            }
            let container = l
                .container_id
                .clone()
                .or_else(|| l.cgroup.as_ref().map(|g| g.rel().display().to_string()))
                .unwrap_or_default();
            frameworks
                .entry(l.framework_id.clone())
                .or_default()
                .push(json!({
                    "id": id, "name": l.executor_name, "source": id, "container": container,
                    "directory": self.work_dir.join("agents").join(&a.id).join("tasks")
                        .join(crate::docker::container_name(id)).display().to_string(),
                    "resources": resources, "tasks": [task], "queued_tasks": [], "completed_tasks": [],
                    "pid": l.pid, "command": l.command_line,
                }));
        }
        let port = a
            .url
            .get()
            .and_then(|u| u.rsplit(':').next())
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .unwrap_or(0);
        json!({
            "version": "1.10.0",
            "id": a.id,
            "pid": format!("slave(1)@{}:{port}", a.hostname),
            "hostname": a.hostname,
            "port": port,
            "resources": {"cpus": a.resources.cpus, "mem": a.resources.mem, "disk": a.resources.disk, "gpus": 0,
                "ports": "[31000-32000]"},
            "used_resources": {"cpus": used.cpus, "mem": used.mem, "disk": used.disk, "gpus": 0},
            "attributes": {},
            "frameworks": frameworks.into_iter().map(|(fid, executors)| json!({
                "id": fid, "executors": executors, "completed_executors": [],
            })).collect::<Vec<_>>(),
            "completed_frameworks": [],
            "flags": {
                "cgroups_enable_cfs": self.limits_enforced().to_string(),
                "cgroups_root": self.cfg.cgroup_prefix,
                "executor_shutdown_grace_period": format!("{}secs", self.cfg.docker_kill_grace_secs),
            },
            "qos_testbed": {
                "cluster_id": self.id,
                "cpu_limits_enforced": self.limits_enforced(),
                "cpu_limits_note": self.cgroup_note,
                "cgroup": a.cgroup.as_ref().map(|g| g.rel().display().to_string()),
                "runtime": match self.cfg.runtime { RuntimeKind::Process => "process", RuntimeKind::Docker => "docker" },
                "recovered": self.recovered,
            },
        })
    }
}

fn ports_ranges(ports: &[u16]) -> String {
    let parts: Vec<String> = ports.iter().map(|p| format!("{p}-{p}")).collect();
    format!("[{}]", parts.join(", "))
}
