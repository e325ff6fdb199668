//! One incarnation from start to exit.
//!
//! 1. **Prepare** (a SIGTERM/SIGINT now exits 0 at once: nothing runs yet, nothing to save):
//!    lock the job's store (waiting up to the grace period for a live previous incarnation; a
//!    directory that cannot be used leaves strategy `none` running without the store, with a
//!    warning, and refuses the strategies that need it),
//!    deal with a leftover container (docker), choose the strategy, prepare the incarnation
//!    directory (restoring the newest complete checkpoint for `app`/`criu`), start the job.
//! 2. **Report the start** in the background: `/initMarathonApp {uuid, started_at, restored}`.
//! 3. **Supervise**: forward SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2; wait for the job's exit or a stop.
//! 4. **The job ends by itself**: delete the job's checkpoints, remove the container (or kill
//!    what the job left in its process group and remove its cgroup), then report
//!    `/endMarathonApp {uuid, finished_at, exit_code}` (after the start report; for
//!    `--report-timeout` at most, cut to the grace period if a SIGTERM comes meanwhile) — so
//!    nothing of the job is left once the supervisor knows it ended — and exit with its status.
//! 5. **SIGTERM/SIGINT**: within `--grace` seconds — checkpoint (`criu`) or ask the job to save
//!    and stop (`app`: SIGTERM, exit 0 expected) or just stop it (`none`, with a warning that the
//!    work is lost), seal the checkpoint, remove the container, exit 0. Nothing is reported as an
//!    end. The job's part ends `min(grace/5, 3 s)` before the deadline, leaving time to seal and
//!    clean up. A second SIGTERM/SIGINT (not a duplicate within 0.5 s) kills the job at once and
//!    exits 128+signal; the previous complete checkpoint stays the one to restore.

use std::time::Duration;

use tokio::time::Instant;

use crate::cgroup::OwnCgroup;
use crate::checkpoints::{Incarnation, Store, StoreError, epoch_now};
use crate::cli::{
    CONTAINER_CHECKPOINT_DIR, CgroupMode, Launch, RuntimeKind, Settings, StrategyArg,
};
use crate::docker::{ContainerSpec, DockerClient, criu_dir, owner_token};
use crate::error::{EXIT_CHECKPOINT_FAILED, EXIT_SETUP, EXIT_STOPPED, SetupError};
use crate::job::{Job, StopOutcome};
use crate::process::ProcessJob;
use crate::report::Reporter;
use crate::signals::{Event, Signals, exit_status_for};
use crate::strategy::{Decision, Strategy, decide};

/// A started job and what goes with it.
struct Started<J> {
    job: J,
    /// The job's locked store; `None` when the checkpoint directory cannot be used (strategy
    /// `none` only).
    store: Option<Store>,
    inc: Incarnation,
    strategy: Strategy,
}

impl<J> Started<J> {
    /// The incarnation with its job, or the start's error with the incarnation discarded.
    fn new(
        job: Result<J, SetupError>,
        store: Option<Store>,
        inc: Incarnation,
        strategy: Strategy,
    ) -> Result<Self, SetupError> {
        match job {
            Ok(job) => Ok(Self {
                job,
                store,
                inc,
                strategy,
            }),
            Err(e) => {
                if let Some(store) = store {
                    store.discard(&inc);
                }
                Err(e)
            }
        }
    }
}

fn store_err(s: &Settings, e: StoreError) -> SetupError {
    match e {
        StoreError::Busy(p) => SetupError::Busy(format!(
            "{} is still held after {:.0} s by another live shell-trap of job {}: refusing to \
             start a second incarnation beside it",
            p.display(),
            s.grace.as_secs_f64(),
            s.uuid
        )),
        other => SetupError::store(&s.job_dir, other),
    }
}

/// Why the checkpoint directory cannot be used, naming it.
fn unusable(s: &Settings, e: &StoreError) -> String {
    match e {
        StoreError::Io { path, source } if *path == s.job_dir => format!(
            "checkpoint directory {} cannot be used: {source}",
            s.job_dir.display()
        ),
        other => format!(
            "checkpoint directory {} cannot be used: {other}",
            s.job_dir.display()
        ),
    }
}

/// The job's store, or why the checkpoint directory cannot be used. A live incarnation holding
/// the lock is an error: that is the lock doing its work, not an unusable directory.
async fn open_store(s: &Settings) -> Result<Result<Store, String>, SetupError> {
    match Store::open_waiting(&s.job_dir, &s.uuid, s.grace).await {
        Ok(store) => Ok(Ok(store)),
        Err(e @ StoreError::Busy(_)) => Err(store_err(s, e)),
        Err(e) => Ok(Err(unusable(s, &e))),
    }
}

/// The decision taken and the incarnation prepared, with the job's store when there is one.
/// The one place an unusable checkpoint directory changes the decision
/// ([`Decision::without_dir`]): one that could not be opened (`store` is why) and one that fails
/// while the incarnation is prepared (after the lock was taken: a full disk, a permission
/// changed) alike.
async fn prepare_run(
    s: &Settings,
    store: Result<Store, String>,
    d: Decision,
) -> Result<(Option<Store>, Incarnation, Decision), SetupError> {
    let failed = match store {
        Ok(store) => {
            let restore = (d.strategy != Strategy::None).then_some(d.strategy);
            match prepare_inc(store, restore).await? {
                Ok((store, inc)) => {
                    log_decision(&d);
                    log_incarnation(&inc, d.strategy);
                    return Ok((Some(store), inc, d));
                }
                Err(e @ StoreError::Newer { .. }) => return Err(store_err(s, e)),
                Err(e) => unusable(s, &e),
            }
        }
        Err(why) => why,
    };
    let d = d
        .without_dir(s.strategy, s.fallback, &failed)
        .map_err(SetupError::Strategy)?;
    tracing::warn!(
        "{failed}: running job {} without its lock and without checkpoints (strategy none) — a \
         second shell-trap of this job is not excluded, a restart begins from scratch and \
         nothing can be restored",
        s.uuid
    );
    tracing::info!("checkpoint strategy none ({})", d.why);
    let inc = Incarnation {
        seq: 1,
        dir: s.job_dir.clone(),
        restored_from: None,
        restored_bytes: 0,
    };
    Ok((None, inc, d))
}

/// A flag value as written on the command line.
fn value_name(v: &impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

/// Runs the job; returns shell-trap's exit status.
pub async fn run(settings: Settings, signals: &mut Signals) -> i32 {
    match run_inner(&settings, signals).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

/// The next stop request, ignoring forwardable signals (nothing runs yet to forward them to).
async fn stop_signal(signals: &mut Signals) -> nix::sys::signal::Signal {
    loop {
        if let Event::Stop(s) = signals.recv().await {
            return s;
        }
    }
}

async fn run_inner(s: &Settings, signals: &mut Signals) -> Result<i32, SetupError> {
    let reporter = Reporter::new(&s.supervisor, &s.uuid)
        .map_err(|e| SetupError::invalid("--supervisor", e.to_string()))?;
    tracing::info!(
        "shell-trap {}: job {}, {} runtime, strategy {}{}, CPUs {}, grace {:.1} s",
        env!("CARGO_PKG_VERSION"),
        s.uuid,
        value_name(&s.launch.kind()),
        value_name(&s.strategy),
        s.fallback
            .map(|f| format!(" (fallback {})", value_name(&f)))
            .unwrap_or_default(),
        s.cpus
            .map_or_else(|| "unbounded".to_owned(), |c| c.to_string()),
        s.grace.as_secs_f64(),
    );
    if s.cpus.is_none() && s.launch.kind() == RuntimeKind::Docker {
        tracing::warn!(
            "no CPU bound: neither --cpus nor MARATHON_APP_RESOURCE_CPUS is set, so the \
             container may use every CPU of the host"
        );
    }
    macro_rules! start_then_supervise {
        ($prepare:expr) => {{
            let started = tokio::select! {
                r = $prepare => r?,
                sig = stop_signal(signals) => {
                    tracing::info!("{sig} before the job started: nothing to checkpoint; exiting");
                    return Ok(EXIT_STOPPED);
                }
            };
            supervise(s, started, &reporter, signals).await
        }};
    }
    match &s.launch {
        Launch::Process { argv, cgroup } => start_then_supervise!(start_process(s, argv, *cgroup)),
        Launch::Docker {
            image,
            cmd,
            options,
        } => start_then_supervise!(start_docker(s, image, cmd, options)),
    }
}

/// `prepare` on the blocking pool; the store is dropped (its lock released) when it fails.
async fn prepare_inc(
    store: Store,
    restore: Option<Strategy>,
) -> Result<Result<(Store, Incarnation), StoreError>, SetupError> {
    tokio::task::spawn_blocking(move || {
        store
            .prepare(restore.map(Strategy::as_str))
            .map(|inc| (store, inc))
    })
    .await
    .map_err(|e| SetupError::Runtime(format!("preparing the checkpoint directory: {e}")))
}

fn log_decision(d: &Decision) {
    if d.strategy == Strategy::None {
        tracing::warn!(
            "checkpoint strategy none ({}): a restart begins from scratch and loses the work done",
            d.why
        );
    } else {
        tracing::info!("checkpoint strategy {} ({})", d.strategy, d.why);
    }
}

fn log_incarnation(inc: &Incarnation, strategy: Strategy) {
    match inc.restored_from {
        Some(from) => tracing::info!(
            "incarnation {}: restoring the checkpoint of incarnation {from} ({} bytes)",
            inc.seq,
            inc.restored_bytes
        ),
        None if inc.seq > 1 && strategy == Strategy::None => tracing::warn!(
            "incarnation {}: starting from scratch (strategy none): the work of the earlier \
             incarnation(s) is lost",
            inc.seq
        ),
        None if inc.seq > 1 => tracing::warn!(
            "incarnation {}: no complete checkpoint to restore; starting from scratch",
            inc.seq
        ),
        None => tracing::info!("incarnation 1: first start"),
    }
}

/// The `QOS_*` variables the job gets.
fn job_env(
    s: &Settings,
    inc: &Incarnation,
    strategy: Strategy,
    ckpt_dir: &str,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("QOS_UUID".to_owned(), s.uuid.clone()),
        ("QOS_SUPERVISOR_URL".to_owned(), s.supervisor_url.clone()),
        ("QOS_INCARNATION".to_owned(), inc.seq.to_string()),
        (
            "QOS_RESTORED".to_owned(),
            if inc.restored_from.is_some() {
                "1"
            } else {
                "0"
            }
            .to_owned(),
        ),
    ];
    if let Some(t) = &s.report_token {
        env.push(("QOS_REPORT_TOKEN".to_owned(), t.clone()));
    }
    if let Some(c) = s.cpus {
        env.push(("QOS_CPUS".to_owned(), c.to_string()));
    }
    if strategy == Strategy::App {
        env.push(("QOS_CHECKPOINT_DIR".to_owned(), ckpt_dir.to_owned()));
    }
    env
}

async fn start_process(
    s: &Settings,
    argv: &[String],
    cgroup: CgroupMode,
) -> Result<Started<ProcessJob>, SetupError> {
    let store = open_store(s).await?;
    let criu = Err(
        "CRIU checkpoints need the docker runtime (docker checkpoint); the process \
                    runtime has app and none"
            .to_owned(),
    );
    let d =
        decide(s.strategy, s.fallback, &criu, s.app_checkpoint).map_err(SetupError::Strategy)?;
    let (store, inc, d) = prepare_run(s, store, d).await?;
    let own = match cgroup {
        CgroupMode::Inherit => None,
        CgroupMode::Create => Some(OwnCgroup::create(&s.uuid, s.cpus.unwrap_or(1.0))?),
    };
    let env = job_env(s, &inc, d.strategy, &inc.dir.display().to_string());
    Started::new(ProcessJob::spawn(argv, &env, own), store, inc, d.strategy)
}

async fn start_docker(
    s: &Settings,
    image: &str,
    cmd: &[String],
    options: &crate::container_options::ContainerOptions,
) -> Result<Started<crate::docker::DockerJob>, SetupError> {
    let store = open_store(s).await?;
    let docker = DockerClient::connect().await?;
    docker
        .adopt_existing(&s.uuid, store.as_ref().ok(), s.grace)
        .await?;
    let labels = docker.prepare_image(image, options.force_pull).await?;
    let declared = labels.get("qos.checkpoint").map(String::as_str) == Some("app");
    let criu = match s.strategy {
        StrategyArg::Criu | StrategyArg::Auto => docker.criu_status().await,
        StrategyArg::App | StrategyArg::None => Err("not probed".to_owned()),
    };
    let d = decide(s.strategy, s.fallback, &criu, s.app_checkpoint || declared)
        .map_err(SetupError::Strategy)?;
    let (store, inc, d) = prepare_run(s, store, d).await?;
    let env = job_env(s, &inc, d.strategy, CONTAINER_CHECKPOINT_DIR);
    let spec = ContainerSpec {
        uuid: &s.uuid,
        image,
        cmd,
        options,
        cpus: s.cpus,
        env,
        strategy: d.strategy,
        inc: store.is_some().then_some(&inc),
        owner: owner_token(),
    };
    let criu_restore =
        (d.strategy == Strategy::Criu && inc.restored_from.is_some()).then(|| criu_dir(&inc));
    let job = docker.start(&spec, criu_restore.as_deref()).await;
    Started::new(job, store, inc, d.strategy)
}

async fn supervise<J: Job>(
    s: &Settings,
    mut st: Started<J>,
    reporter: &Reporter,
    signals: &mut Signals,
) -> Result<i32, SetupError> {
    let started_at = epoch_now();
    let restored = st.inc.restored_from.is_some();
    tracing::info!(
        "{} running: incarnation {}{}",
        st.job.describe(),
        st.inc.seq,
        if restored { " (restored)" } else { "" }
    );
    let r = reporter.clone();
    let init_deadline = Instant::now() + s.report_timeout;
    let strategy = st.strategy.as_str();
    let init =
        tokio::spawn(async move { r.init(started_at, restored, strategy, init_deadline).await });

    let event = loop {
        tokio::select! {
            r = st.job.wait() => break Ok(r),
            ev = signals.recv() => match ev {
                Event::Forward(sig) => st.job.forward(sig).await,
                Event::Stop(sig) => break Err(sig),
            },
        }
    };
    match event {
        Ok(r) => ended(s, st, r, reporter, init, signals, None).await,
        Err(sig) => stop(s, st, sig, reporter, init, signals).await,
    }
}

/// The job ended by itself (`deadline`: the grace deadline when a stop was already under way).
async fn ended<J: Job>(
    s: &Settings,
    mut st: Started<J>,
    r: Result<i32, String>,
    reporter: &Reporter,
    init: tokio::task::JoinHandle<crate::report::Outcome>,
    signals: &mut Signals,
    deadline: Option<Instant>,
) -> Result<i32, SetupError> {
    let finished_at = epoch_now();
    let code = match r {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}; not reporting an end, keeping the checkpoints");
            init.abort();
            st.job.cleanup().await;
            return Ok(EXIT_SETUP);
        }
    };
    tracing::info!("the job exited by itself with status {code}");
    // Nothing of the job is left by the time the supervisor hears of its end: it deletes the app
    // then (which stops this process), and whoever looks next must find nothing.
    if let Some(store) = st.store.take() {
        let _ = tokio::task::spawn_blocking(move || store.remove_all()).await;
    }
    st.job.cleanup().await;
    let until = deadline.unwrap_or_else(|| Instant::now() + s.report_timeout);
    let report = async {
        let _ = tokio::time::timeout_at(until, init).await;
        reporter.end(finished_at, code, until).await
    };
    tokio::pin!(report);
    tokio::select! {
        _ = &mut report => {}
        sig = stop_signal(signals), if deadline.is_none() => {
            tracing::warn!("{sig} while reporting the end: finishing within the grace period");
            let _ = tokio::time::timeout(s.grace.mul_f64(0.8), &mut report).await;
        }
    }
    Ok(code)
}

async fn stop<J: Job>(
    s: &Settings,
    mut st: Started<J>,
    sig: nix::sys::signal::Signal,
    reporter: &Reporter,
    init: tokio::task::JoinHandle<crate::report::Outcome>,
    signals: &mut Signals,
) -> Result<i32, SetupError> {
    let t0 = Instant::now();
    let deadline = t0 + s.grace;
    let reserve = (s.grace / 5).min(Duration::from_secs(3));
    let job_deadline = deadline - reserve;
    // A cancelled job is not coming back: its work and checkpoints are discarded (unless the
    // cancellation asked to keep them). Asked briefly; without an answer, save as for a restart.
    let ask = t0 + (s.grace / 5).min(Duration::from_secs(2));
    if let Some(false) = reporter.cancelled(ask).await {
        return discard(s, st, sig, init, signals, t0, job_deadline, deadline).await;
    }
    match st.strategy {
        Strategy::None => tracing::warn!(
            "{sig}: stopping {} without a checkpoint (strategy none): the work done so far is lost",
            st.job.describe()
        ),
        other => tracing::info!(
            "{sig}: checkpointing {} ({other}) and stopping it within {:.1} s",
            st.job.describe(),
            (job_deadline - t0).as_secs_f64()
        ),
    }
    let outcome = tokio::select! {
        o = st.job.checkpoint_and_stop(st.strategy, job_deadline) => o,
        second = signals.second_stop((sig, t0), |f| tracing::info!("{f} ignored while stopping")) => {
            tracing::warn!("second signal {second}: killing the job at once, without a checkpoint");
            init.abort();
            st.job.kill_now().await;
            st.job.cleanup().await;
            return Ok(exit_status_for(second));
        }
    };
    let code = match outcome {
        StopOutcome::Checkpointed => match st.store.take() {
            None => {
                tracing::error!(
                    "the job checkpointed, but there is no checkpoint directory to seal it in"
                );
                EXIT_CHECKPOINT_FAILED
            }
            Some(store) => {
                let inc = st.inc.clone();
                let strategy = st.strategy;
                let (store, sealed) = tokio::task::spawn_blocking(move || {
                    let r = store.seal(&inc, strategy.as_str());
                    (store, r)
                })
                .await
                .map_err(|e| SetupError::Runtime(format!("sealing: {e}")))?;
                st.store = Some(store);
                match sealed {
                    Ok(m) => {
                        tracing::info!(
                            "checkpoint of incarnation {} sealed ({} files, {} bytes) {:.3} s after {sig}",
                            st.inc.seq,
                            m.files.len(),
                            m.bytes(),
                            t0.elapsed().as_secs_f64()
                        );
                        if m.files.is_empty() {
                            tracing::warn!("the job saved nothing in its checkpoint directory");
                        }
                        EXIT_STOPPED
                    }
                    Err(e) => {
                        tracing::error!(
                            "cannot seal the checkpoint: {e}; the next start restores the previous \
                         complete checkpoint, if any"
                        );
                        EXIT_CHECKPOINT_FAILED
                    }
                }
            }
        },
        StopOutcome::Stopped { code } => {
            tracing::info!("the job stopped (status {code}) without a checkpoint");
            EXIT_STOPPED
        }
        StopOutcome::Failed(why) => {
            tracing::error!(
                "checkpoint failed: {why}; the next start restores the previous complete \
                 checkpoint, if any"
            );
            EXIT_CHECKPOINT_FAILED
        }
        StopOutcome::Exited(code) => {
            tracing::info!("the job had already ended by itself when {sig} arrived");
            return ended(s, st, Ok(code), reporter, init, signals, Some(deadline)).await;
        }
    };
    // A start report still under way may finish, but not past the deadline.
    let abort = init.abort_handle();
    if tokio::time::timeout_at(deadline, init).await.is_err() {
        abort.abort();
        tracing::warn!("the start report was not delivered before the grace period ended");
    }
    let _ = tokio::time::timeout_at(
        deadline.max(Instant::now() + Duration::from_secs(1)),
        st.job.cleanup(),
    )
    .await;
    tracing::info!(
        "stopped {:.3} s after {sig}; exiting {code}",
        t0.elapsed().as_secs_f64()
    );
    Ok(code)
}

/// The stop of a cancelled job: stop it without a checkpoint and delete the job's checkpoint
/// directory.
#[allow(clippy::too_many_arguments)]
async fn discard<J: Job>(
    s: &Settings,
    mut st: Started<J>,
    sig: nix::sys::signal::Signal,
    init: tokio::task::JoinHandle<crate::report::Outcome>,
    signals: &mut Signals,
    t0: Instant,
    job_deadline: Instant,
    deadline: Instant,
) -> Result<i32, SetupError> {
    tracing::info!(
        "{sig}: the job was cancelled: stopping {} without a checkpoint and removing its \
         checkpoints",
        st.job.describe()
    );
    let outcome = tokio::select! {
        o = st.job.checkpoint_and_stop(Strategy::None, job_deadline) => o,
        second = signals.second_stop((sig, t0), |f| tracing::info!("{f} ignored while stopping")) => {
            tracing::warn!("second signal {second}: killing the job at once");
            st.job.kill_now().await;
            StopOutcome::Stopped { code: exit_status_for(second) }
        }
    };
    if let StopOutcome::Failed(why) = &outcome {
        tracing::warn!("stopping the cancelled job: {why}");
    }
    init.abort();
    let _ = tokio::time::timeout_at(
        deadline.max(Instant::now() + Duration::from_secs(1)),
        st.job.cleanup(),
    )
    .await;
    let store = st.store;
    let dir = s.job_dir.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(store) = store {
            store.remove_all();
        }
        if dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!("cannot remove {}: {e}", dir.display());
            }
        }
    })
    .await;
    tracing::info!(
        "cancelled job stopped and its checkpoints removed {:.3} s after {sig}",
        t0.elapsed().as_secs_f64()
    );
    Ok(EXIT_STOPPED)
}
