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
        let to_run = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            self.place_pending(&mut st)
        };
        self.run_all(to_run);
    }

    /// Launches a task at once if an agent has room for `ask`, as a framework launches a task on
    /// an offer that fits: the tasks already queued that fit go first, then `make` builds the
    /// task (its resources must be `ask`). Returns where it runs; `None` (nothing built, nothing
    /// queued) when no agent has room or the testbed is stopping.
    pub(crate) fn launch_if_room(
        self: &Arc<Self>,
        ask: Resources,
        make: impl FnOnce() -> TaskSpec,
        sink: &UpdateSink,
    ) -> Option<Placement> {
        let (mut to_run, placed) = {
            let mut st = self.lock();
            if st.closed {
                return None;
            }
            let to_run = self.place_pending(&mut st);
            let placed = self.best_agent(&st, &ask).map(|agent| {
                let spec = make();
                self.admit(
                    &mut st,
                    agent,
                    Pending {
                        spec,
                        sink: sink.clone(),
                    },
                )
            });
            (to_run, placed)
        };
        let placement = placed.as_ref().map(|p| Placement {
            agent_id: self.agents[p.agent].id.clone(),
            host: self.agents[p.agent].hostname.clone(),
            ports: p.ports.clone(),
        });
        to_run.extend(placed);
        self.run_all(to_run);
        placement
    }

    /// The agent with the most free CPU among those with room for `ask` (ties: the lowest index).
    fn best_agent(&self, st: &State, ask: &Resources) -> Option<usize> {
        self.agents
            .iter()
            .filter(|a| a.resources.has_room(&st.used[a.index], ask))
            .max_by(|a, b| {
                let fa = a.resources.cpus - st.used[a.index].cpus;
                let fb = b.resources.cpus - st.used[b.index].cpus;
                fa.total_cmp(&fb).then(b.index.cmp(&a.index))
            })
            .map(|a| a.index)
    }

    /// Takes every queued task that fits off the queue, in arrival order, onto its agent.
    fn place_pending(&self, st: &mut State) -> Vec<Admitted> {
        let mut to_run = Vec::new();
        let mut i = 0;
        while i < st.pending.len() {
            let ask = st.pending[i].spec.resources;
            let Some(agent) = self.best_agent(st, &ask) else {
                i += 1;
                continue;
            };
            let Some(p) = st.pending.remove(i) else { break };
            to_run.push(self.admit(st, agent, p));
        }
        to_run
    }

    /// Puts a task on `agent`: its resources taken, its ports picked, its record made.
    fn admit(&self, st: &mut State, agent: usize, p: Pending) -> Admitted {
        let ask = p.spec.resources;
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
        Admitted {
            agent,
            p,
            ports,
            kill_rx,
            done_tx,
            default_grace,
        }
    }

    /// Runs each admitted task in the background.
    fn run_all(self: &Arc<Self>, to_run: Vec<Admitted>) {
        for a in to_run {
            let c = Arc::clone(self);
            self.tracker.spawn(async move {
                c.run_task(a.agent, a.p, a.ports, a.kill_rx, a.default_grace)
                    .await;
                let _ = a.done_tx.send(true);
            });
        }
    }
}

/// A task put on an agent, to be run.
struct Admitted {
    agent: usize,
    p: Pending,
    ports: Vec<u16>,
    kill_rx: watch::Receiver<Option<Duration>>,
    done_tx: watch::Sender<bool>,
    default_grace: Duration,
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
