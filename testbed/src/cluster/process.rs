//! One task's life on its agent: staging, the process runtime (`/bin/sh -c` in the task's cgroups,
//! joined before the command starts), status updates, SIGTERM → grace → SIGKILL of its process
//! group, reaping, and the `qos.json` metadata for cgroup-collector.

use super::*;

/// Escape hatch that joins a task to its cgroups before running the command: `$1` is the number
/// of `cgroup.procs` files that follow, then the command's argv. The shell writes its own pid into
/// each file and `exec`s the command, so the command starts inside its cgroups (and keeps the
/// pid that was spawned, which is also its process group).
const TRAMPOLINE: &str = r#"n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 126; shift; n=$((n-1)); done; exec "$@""#;

impl Cluster {
    /// One task from staging to its terminal update.
    pub(super) async fn run_task(
        self: Arc<Self>,
        agent: usize,
        p: Pending,
        ports: Vec<u16>,
        mut kill_rx: watch::Receiver<Option<Duration>>,
        default_grace: Duration,
    ) {
        let Pending { spec, sink } = p;
        let a = &self.agents[agent];
        let task_id = spec.task_id.clone();
        let placement = Placement {
            agent_id: a.id.clone(),
            host: a.hostname.clone(),
            ports,
        };
        let update = |state: TaskState, message: String| TaskUpdate {
            task_id: task_id.clone(),
            state,
            placement: placement.clone(),
            message,
            at: Utc::now(),
        };
        let _ = sink.send(update(TaskState::Staging, String::new()));
        let env = (spec.env)(&placement);
        let sandbox = self.sandbox_of(&a.id, &task_id);
        let meta = self.write_meta(&a.id, &task_id, spec.uuid.as_deref());
        let outcome = if kill_rx.borrow().is_some() {
            Outcome::Killed("killed before it started".to_owned())
        } else if let (Some(container), Some(docker)) = (&spec.container, &self.docker) {
            let _ = sink.send(update(TaskState::Starting, String::new()));
            let parent = a.cgroup.as_ref().map(|g| format!("/{}", g.rel().display()));
            let run = crate::docker::DockerRun {
                task_id: &task_id,
                cluster: &self.id,
                container,
                command: &spec.command,
                env: &env,
                cpus: spec.resources.cpus,
                mem: spec.resources.mem,
                cgroup_parent: parent.as_deref(),
                uuid: spec.uuid.as_deref(),
                sandbox: &sandbox,
            };
            docker
                .run(run, &mut kill_rx, default_grace, |cid, pid| {
                    let cg = match (&self.cgroups, pid) {
                        (Some(layout), Some(pid)) => cgroups::cgroup_of_pid(layout, pid),
                        _ => None,
                    };
                    if let Some(l) = self.lock().live.get_mut(&task_id) {
                        l.state = TaskState::Running;
                        l.container_id = Some(cid.to_owned());
                        l.pid = pid;
                        l.cgroup = cg;
                    }
                    if meta.is_some() {
                        let _ = self.write_meta(&a.id, cid, spec.uuid.as_deref());
                    }
                    let _ = sink.send(update(TaskState::Running, String::new()));
                })
                .await
        } else if matches!(spec.command, TaskCommand::Image) {
            Outcome::Failed(
                "this task has no command (it relies on its container image) and the testbed \
                 runs it as a process: start the testbed with --runtime docker"
                    .to_owned(),
            )
        } else {
            let _ = sink.send(update(TaskState::Starting, String::new()));
            self.run_process(
                a,
                &task_id,
                &spec.command,
                spec.resources.cpus,
                &env,
                &sandbox,
                &mut kill_rx,
                default_grace,
                &sink,
                &update,
            )
            .await
        };
        // Cleanup before the terminal update, so that a framework reacting to it finds the
        // resources free.
        self.release(&a.id, &task_id).await;
        self.wake.notify_one();
        self.room.send_modify(|n| *n = n.wrapping_add(1));
        let (state, message) = outcome.terminal();
        let _ = sink.send(update(state, message));
    }

    fn is_task_cgroup(&self, g: &Cgroup) -> bool {
        g.rel().starts_with(&self.cfg.cgroup_prefix)
    }

    /// A task ended: removes its cgroup, its metadata (and its container's), tells the registry,
    /// gives its resources back to the agent, and removes the sandboxes that are due (its own
    /// `sandbox_gc_delay_secs` later).
    async fn release(&self, agent_id: &str, task_id: &str) {
        let (cgroup, cid) = self
            .lock()
            .live
            .get(task_id)
            .map(|l| (l.cgroup.clone(), l.container_id.clone()))
            .unwrap_or_default();
        if let Some(g) = cgroup.filter(|g| self.is_task_cgroup(g)) {
            let r = tokio::task::spawn_blocking(move || g.destroy(Duration::from_secs(5))).await;
            if let Ok(Err(e)) = r {
                tracing::warn!("task {task_id}: cgroup cleanup: {e}");
            }
        }
        self.remove_meta(agent_id, task_id);
        if let Some(cid) = cid {
            self.remove_meta(agent_id, &cid);
        }
        if let Some(r) = &self.registry {
            r.task_ended(task_id);
        }
        let due: Vec<PathBuf> = {
            let mut st = self.lock();
            if let Some(l) = st.live.remove(task_id) {
                st.used[l.agent].release(&l.resources);
            }
            let now = tokio::time::Instant::now();
            let sandbox = self.sandbox_of(agent_id, task_id);
            st.sandbox_gc.ended(task_id, sandbox, now);
            let due = st.sandbox_gc.due(now);
            // A task id that runs again (a Chronos retry of the same run) keeps its sandbox.
            due.into_iter()
                .filter(|e| !st.live.contains_key(&e.task_id))
                .map(|e| e.sandbox)
                .collect()
        };
        if !due.is_empty() {
            let _ = tokio::task::spawn_blocking(move || {
                for dir in due {
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            tracing::warn!("sandbox {}: cannot remove it: {e}", dir.display());
                        }
                    }
                }
            })
            .await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_process(
        &self,
        a: &Agent,
        task_id: &str,
        command: &TaskCommand,
        cpus: f64,
        env: &[(String, String)],
        sandbox: &Path,
        kill_rx: &mut watch::Receiver<Option<Duration>>,
        default_grace: Duration,
        sink: &UpdateSink,
        update: &(dyn Fn(TaskState, String) -> TaskUpdate + Sync),
    ) -> Outcome {
        if let Err(e) = std::fs::create_dir_all(sandbox) {
            return Outcome::Failed(format!("cannot create sandbox {}: {e}", sandbox.display()));
        }
        let cgroup = match (&self.cgroups, &a.cgroup) {
            (Some(layout), Some(agent_group)) => {
                let g = layout.group(&agent_group.rel().join(sanitize_path(task_id)));
                if let Err(e) = g.create(cpus) {
                    let _ = g.destroy(Duration::ZERO);
                    return Outcome::Failed(format!(
                        "cannot create cgroup {}: {e}",
                        g.rel().display()
                    ));
                }
                Some(g)
            }
            _ => None,
        };
        let argv: Vec<String> = match command {
            TaskCommand::Shell(c) => vec!["/bin/sh".into(), "-c".into(), c.clone()],
            TaskCommand::Argv(v) if !v.is_empty() => v.clone(),
            _ => return Outcome::Failed("empty command".to_owned()),
        };
        let mut cmd = match &cgroup {
            Some(g) => {
                let files = g.procs_files();
                let mut c = tokio::process::Command::new("/bin/sh");
                c.arg("-c")
                    .arg(TRAMPOLINE)
                    .arg("qos-testbed-task")
                    .arg(files.len().to_string())
                    .args(&files)
                    .args(&argv);
                c
            }
            None => {
                let mut c = tokio::process::Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        let out = std::fs::File::create(sandbox.join("stdout"));
        let err = std::fs::File::create(sandbox.join("stderr"));
        let (Ok(out), Ok(err)) = (out, err) else {
            return Outcome::Failed("cannot create the sandbox's stdout/stderr".to_owned());
        };
        cmd.current_dir(sandbox)
            .env("MESOS_SANDBOX", sandbox)
            .env("MESOS_DIRECTORY", sandbox)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(false);
        if let Some(l) = self.lock().live.get_mut(task_id) {
            l.cgroup.clone_from(&cgroup);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(format!("cannot start {}: {e}", argv[0])),
        };
        let pid = child.id();
        if let (Some(g), Some(pid)) = (&cgroup, pid) {
            // Report RUNNING only once the command runs inside its cgroups.
            wait_joined(g, pid).await;
        }
        if let Some(l) = self.lock().live.get_mut(task_id) {
            l.pid = pid;
            l.state = TaskState::Running;
        }
        let _ = sink.send(update(TaskState::Running, String::new()));
        if let (Some(r), Some(pid)) = (&self.registry, pid) {
            r.task_started(task_id, pid);
        }
        let pgid = pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
        let outcome = tokio::select! {
            status = child.wait() => status_outcome(status),
            grace = wait_kill(kill_rx, default_grace) => {
                self.set_state(task_id, TaskState::Killing);
                let _ = sink.send(update(TaskState::Killing, String::new()));
                stop_process(&mut child, pgid, cgroup.as_ref(), kill_rx, grace).await;
                Outcome::Killed("Command terminated on request".to_owned())
            }
        };
        // The container ends with its main process, as a Mesos container is destroyed then:
        // whatever the task left in its process group goes too (its cgroup, when it has one,
        // is emptied and removed by the caller).
        if let Some(pg) = pgid {
            let _ = killpg(pg, Signal::SIGKILL);
        }
        outcome
    }

    /// `<meta_dir>/<agent>/<task>/qos.json` for cgroup-collector. Best effort.
    fn write_meta(&self, agent: &str, task: &str, uuid: Option<&str>) -> Option<PathBuf> {
        let dir = self.cfg.meta_dir.join(agent).join(sanitize_path(task));
        std::fs::create_dir_all(&dir).ok()?;
        let body = json!({
            "uuid": uuid.unwrap_or(""),
            "task_id": task,
            "name": task,
            "agent_id": agent,
            "cluster_id": self.id,
        });
        let path = dir.join("qos.json");
        std::fs::write(&path, body.to_string()).ok()?;
        Some(path)
    }

    fn remove_meta(&self, agent: &str, task: &str) {
        let dir = self.cfg.meta_dir.join(agent).join(sanitize_path(task));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir(self.cfg.meta_dir.join(agent));
    }
}

/// Waits (up to 2 s) until `pid` is in the last of its cgroups and has `exec`ed the command.
async fn wait_joined(g: &Cgroup, pid: u32) {
    let last = g.procs_files().pop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        let proc = i32::try_from(pid)
            .ok()
            .and_then(|p| procfs::process::Process::new(p).ok());
        let Some(proc) = proc.filter(|p| p.stat().is_ok_and(|s| s.state != 'Z')) else {
            // Gone, or a zombie: nothing left to join.
            return;
        };
        let joined = last.as_ref().is_none_or(|f| {
            std::fs::read_to_string(f)
                .map(|t| t.lines().any(|l| l.trim() == pid.to_string()))
                .unwrap_or(true)
        });
        let execed = proc
            .cmdline()
            .map_or(true, |c| !c.iter().any(|a| a.contains("qos-testbed-task")));
        if joined && execed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGTERM to the task's process group, then SIGKILL to it and to everything left in its cgroup
/// once `grace` passes (a later, shorter grace from `kill_rx` shortens the wait); returns once
/// the task's process is reaped.
async fn stop_process(
    child: &mut tokio::process::Child,
    pgid: Option<Pid>,
    cgroup: Option<&Cgroup>,
    kill_rx: &mut watch::Receiver<Option<Duration>>,
    mut grace: Duration,
) {
    if let Some(pg) = pgid {
        let _ = killpg(pg, Signal::SIGTERM);
    }
    loop {
        tokio::select! {
            status = child.wait() => {
                drop(status);
                return;
            }
            () = tokio::time::sleep(grace) => {
                if let Some(pg) = pgid {
                    let _ = killpg(pg, Signal::SIGKILL);
                }
                if let Some(g) = cgroup {
                    for p in g.pids() {
                        let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
                    }
                }
                let _ = child.wait().await;
                return;
            }
            changed = kill_rx.changed() => {
                // A shorter grace arrived (e.g. shutdown); restart the wait with it.
                if changed.is_ok() {
                    if let Some(g) = *kill_rx.borrow() {
                        grace = g.min(grace);
                    }
                } else {
                    grace = Duration::ZERO;
                }
            }
        }
    }
}
