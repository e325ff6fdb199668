//! Placement, as Mesos offers behave: a task goes to the least-loaded agent that has room; tasks
//! that fit nowhere wait until one ends.

use super::*;

impl Cluster {
    pub(super) async fn placement_loop(self: Arc<Self>) {
        loop {
            self.place();
            tokio::select! {
                () = self.wake.notified() => {}
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Places every queued task that fits, in arrival order, each on the agent with the most free
    /// CPU among those with room (ties: the lowest index).
    fn place(self: &Arc<Self>) {
        let mut to_run = Vec::new();
        {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            let mut i = 0;
            while i < st.pending.len() {
                let ask = st.pending[i].spec.resources;
                let best = self
                    .agents
                    .iter()
                    .filter(|a| a.resources.has_room(&st.used[a.index], &ask))
                    .max_by(|a, b| {
                        let fa = a.resources.cpus - st.used[a.index].cpus;
                        let fb = b.resources.cpus - st.used[b.index].cpus;
                        fa.total_cmp(&fb).then(b.index.cmp(&a.index))
                    })
                    .map(|a| a.index);
                let Some(agent) = best else {
                    i += 1;
                    continue;
                };
                let Some(p) = st.pending.remove(i) else { break };
                st.used[agent].add(&ask);
                let (kill_tx, kill_rx) = watch::channel(None);
                let (done_tx, done_rx) = watch::channel(false);
                let docker = p.spec.container.is_some() && self.docker.is_some();
                let default_grace = p.spec.kill_grace.unwrap_or(if docker {
                    self.cfg.docker_kill_grace()
                } else {
                    self.cfg.process_kill_grace()
                });
                let ports = free_ports(p.spec.ports);
                let command_line = match &p.spec.command {
                    TaskCommand::Shell(c) => format!("sh -c {}", shell_quote(c)),
                    TaskCommand::Argv(v) => v.join(" "),
                    TaskCommand::Image => String::new(),
                };
                st.live.insert(
                    p.spec.task_id.clone(),
                    Live {
                        agent,
                        framework_id: p.spec.framework_id.clone(),
                        executor_name: format!(
                            "Command Executor (Task: {}) (Command: {command_line})",
                            p.spec.task_id
                        ),
                        command_line,
                        labels: p.spec.labels.clone(),
                        resources: ask,
                        ports: ports.clone(),
                        state: TaskState::Staging,
                        pid: None,
                        container_id: None,
                        cgroup: None,
                        kill: kill_tx,
                        done: done_rx,
                        default_grace,
                    },
                );
                to_run.push((agent, p, ports, kill_rx, done_tx, default_grace));
            }
        }
        for (agent, p, ports, kill_rx, done_tx, grace) in to_run {
            let c = Arc::clone(self);
            self.tracker.spawn(async move {
                c.run_task(agent, p, ports, kill_rx, grace).await;
                let _ = done_tx.send(true);
            });
        }
    }
}

/// Host ports for a task: free ports picked by the kernel (all agents share this host).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|_| std::net::TcpListener::bind("127.0.0.1:0").ok())
        .collect();
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok().map(|a| a.port()))
        .collect()
}
