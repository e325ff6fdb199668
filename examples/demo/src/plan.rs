//! What the demo runs: the jobs (the scaled thesis jobs of `examples/jobs/local`, adjusted so
//! that each one shows something), LINPACK calibrated to this machine, and the configuration
//! files of the testbed and the supervisor.

use anyhow::{Context, bail};
use demo::watch::{Fw, JobInfo};
use demo::workload::{IMAGE, LINPACK_N};
use serde_json::{Value, json};

use crate::cli::PolicyArg;

/// Emulated cluster: one agent with two CPUs, like one of the thesis' nodes, on this machine's
/// two cores.
pub(crate) const AGENTS: usize = 1;
/// CPUs of each agent.
pub(crate) const CPUS_PER_AGENT: f64 = 2.0;
/// Most CPUs one job gets: less than the agent, so that one job never blocks the others'
/// placement.
pub(crate) const CPU_MAX: f64 = 1.5;

/// One job of the demo.
#[derive(Debug, Clone)]
pub(crate) struct JobSpec {
    /// The job file it is made from.
    pub(crate) base: Base,
    /// Chronos: its runs and their period (Marathon: none, the app runs once).
    schedule: Option<Schedule>,
    /// Initial CPUs.
    pub(crate) cpus: f64,
    /// `qos.duration`: CPU-seconds per iteration (Chronos) or in total (Marathon).
    pub(crate) duration: f64,
    /// CPU-seconds the command really takes per run (its LINPACK `--repeat` is sized for this).
    pub(crate) work: f64,
    /// `qos.deadline`, seconds after submission.
    pub(crate) deadline: f64,
    /// `qos.desv_deadline`.
    pub(crate) desv: f64,
    /// What to watch for.
    pub(crate) story: &'static str,
}

/// A Chronos job's repetitions: `runs` runs, one every `period` seconds.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    runs: u32,
    period: u32,
}

impl Schedule {
    /// Chronos' ISO 8601 form, `R<runs>//PT<period>S` (no start: at once).
    fn iso8601(self) -> String {
        format!("R{}//PT{}S", self.runs, self.period)
    }
}

/// A job file of `examples/jobs/local` that the demo's jobs are made from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Base {
    /// The file, relative to the workspace.
    pub(crate) file: &'static str,
    /// Its text, built into the binary.
    text: &'static str,
    /// Its framework.
    pub(crate) framework: Fw,
}

/// The [`Base`] of `examples/jobs/local/$name`: its path written once, for the report and for
/// `include_str!`.
macro_rules! base {
    ($name:literal, $framework:expr) => {
        Base {
            file: concat!("examples/jobs/local/", $name),
            text: include_str!(concat!("../../jobs/local/", $name)),
            framework: $framework,
        }
    };
}

const CHRONOS_1: Base = base!("openmpLinpack1.json", Fw::Chronos);
const CHRONOS_3: Base = base!("openmpLinpack3.json", Fw::Chronos);
const MARATHON_1: Base = base!("marathon_openmpLinpack1.json", Fw::Marathon);

/// The jobs of a run.
pub(crate) fn jobs(quick: bool) -> Vec<JobSpec> {
    if quick {
        return vec![
            JobSpec {
                base: CHRONOS_1,
                schedule: Some(Schedule {
                    runs: 3,
                    period: 12,
                }),
                cpus: 0.4,
                duration: 6.0,
                work: 6.0,
                deadline: 40.0,
                desv: 0.2,
                story: "starts too small (3 × 15 s at 0.4 CPU > 40 s): grows",
            },
            JobSpec {
                base: MARATHON_1,
                schedule: None,
                cpus: 0.3,
                duration: 8.0,
                work: 14.0,
                deadline: 45.0,
                desv: 0.1,
                story: "declares 8 CPU-s but needs 14 (47 s at 0.3 CPU): grows once its progress \
                        shows it, through a restart that resumes from LINPACK's checkpoint",
            },
        ];
    }
    vec![
        JobSpec {
            base: CHRONOS_1,
            schedule: Some(Schedule {
                runs: 4,
                period: 20,
            }),
            cpus: 0.5,
            duration: 10.0,
            work: 14.0,
            deadline: 100.0,
            desv: 0.2,
            story: "declares 10 CPU-s per iteration but needs 14 (28 s at 0.5 CPU): grows once \
                    its first iterations are measured",
        },
        JobSpec {
            base: CHRONOS_3,
            schedule: Some(Schedule {
                runs: 5,
                period: 20,
            }),
            cpus: 1.0,
            duration: 5.0,
            work: 5.0,
            deadline: 130.0,
            desv: 0.2,
            story: "over-provisioned (5 × 5 CPU-s take 25 s at 1 CPU, the deadline is 130 s): shrinks",
        },
        JobSpec {
            base: MARATHON_1,
            schedule: None,
            cpus: 0.4,
            duration: 30.0,
            work: 48.0,
            deadline: 110.0,
            desv: 0.1,
            story: "declares 30 CPU-s but needs 48 (120 s at 0.4 CPU): grows once its progress \
                    shows it, through a restart that resumes from LINPACK's checkpoint",
        },
    ]
}

impl JobSpec {
    /// Its runs: a Chronos job's scheduled ones, a Marathon app's one.
    pub(crate) fn iterations(&self) -> u32 {
        self.schedule.map_or(1, |s| s.runs)
    }

    /// The job file: the base file with this run's schedule, size, QoS and calibrated command.
    pub(crate) fn render(&self, repeat: u64, docker: bool) -> anyhow::Result<Value> {
        let mut v: Value = serde_json::from_str(self.base.text)
            .with_context(|| format!("{} is not JSON", self.base.file))?;
        let Some(o) = v.as_object_mut() else {
            bail!("{} is not a JSON object", self.base.file);
        };
        let program = if docker { "/linpack_openmp" } else { "linpack" };
        let command = format!("{program} {LINPACK_N} --repeat {repeat}");
        // Marathon runs `cmd` with `/bin/sh -c`, and dash does not exec the last command: with
        // `exec`, SIGTERM reaches LINPACK itself (which checkpoints), not a shell that dies.
        let marathon_cmd = format!("exec {command}");
        o.insert(
            "qos".into(),
            json!({"duration": self.duration, "deadline": self.deadline, "desv_deadline": self.desv}),
        );
        match self.base.framework {
            Fw::Chronos => {
                if let Some(s) = self.schedule {
                    o.insert("schedule".into(), json!(s.iso8601()));
                }
                // Chronos' job files carry numbers as strings, as the thesis wrote them.
                o.insert("cpus".into(), json!(fmt_cpus(self.cpus)));
                o.insert("command".into(), json!(command));
                if docker {
                    o.insert(
                        "container".into(),
                        json!({"type": "DOCKER", "image": IMAGE, "network": "HOST"}),
                    );
                }
            }
            Fw::Marathon => {
                o.insert("cpus".into(), json!(self.cpus));
                o.insert("cmd".into(), json!(marathon_cmd));
                // Restarts must not wait for Marathon's default 300 s back-off on failures.
                o.insert("backoffSeconds".into(), json!(1));
                if docker {
                    o.insert(
                        "container".into(),
                        json!({"type": "DOCKER", "docker": {"image": IMAGE, "network": "HOST"}}),
                    );
                }
            }
        }
        Ok(v)
    }

    /// What the live view and the report need to know of it.
    pub(crate) fn info(&self) -> JobInfo {
        JobInfo {
            name: self.name(),
            framework: self.base.framework,
            deadline: self.deadline,
            cpus: self.cpus,
            story: self.story.to_owned(),
            file: self.base.file.to_owned(),
        }
    }

    /// The job's name (Chronos) or app id (Marathon) in the base file.
    pub(crate) fn name(&self) -> String {
        let v: Value = serde_json::from_str(self.base.text).unwrap_or(Value::Null);
        match self.base.framework {
            Fw::Chronos => v["name"].as_str().unwrap_or("job").to_owned(),
            Fw::Marathon => v["id"]
                .as_str()
                .unwrap_or("/app")
                .trim_start_matches('/')
                .to_owned(),
        }
    }
}

fn fmt_cpus(c: f64) -> String {
    let s = format!("{c:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// How the run's times are scaled from the thesis' (its Marathon check period was 120 s for a
/// 480 s window, its Eq. 1 deployment time 45 s for 1800 s deadlines).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// The thesis policy's Marathon period, seconds.
    pub(crate) monitoring_period: f64,
    /// Eq. 1's per-iteration deployment time (both policies' prior), seconds.
    pub(crate) deployment_time: f64,
    /// The predictive policy's Marathon period, seconds.
    pub(crate) control_period: f64,
}

impl Timing {
    pub(crate) fn for_run(quick: bool) -> Self {
        if quick {
            Self {
                monitoring_period: 10.0,
                deployment_time: 1.0,
                control_period: 3.0,
            }
        } else {
            Self {
                monitoring_period: 20.0,
                deployment_time: 2.0,
                control_period: 5.0,
            }
        }
    }
}

/// The supervisor's TOML configuration.
pub(crate) fn supervisor_config(policy: PolicyArg, timing: Timing) -> String {
    let Timing {
        monitoring_period,
        deployment_time,
        control_period,
    } = timing;
    format!(
        "# written by the demo: the thesis' constants with its times scaled to a few minutes\n\
         policy = \"{policy}\"\n\
         cpu_min = 0.1\n\
         # the thesis' cpu_max was a whole 2-CPU node; here one agent is shared by every job\n\
         cpu_max = {CPU_MAX:.1}\n\
         # thesis: Marathon jobs are checked every monitoring_period (120 s in the thesis)\n\
         monitoring_period = {monitoring_period:.1}\n\
         # Eq. 1's per-iteration overhead (45 s in the thesis); the predictive policy measures it\n\
         deployment_time = {deployment_time:.1}\n\
         \n\
         [predictive]\n\
         cooldown = {cooldown:.1}\n\
         restart_cost = 4.0\n\
         safety_secs = 3.0\n\
         stale_after = 15.0\n\
         \n\
         [control]\n\
         period = {control_period:.1}\n\
         history_hold_interval = 5.0\n\
         sample_downsample = 1.0\n\
         stuck_deployment_timeout = 30.0\n\
         backoff_max = 5.0\n",
        policy = policy.as_str(),
        cooldown = control_period * 2.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Chronos jobs' schedules in the job files: runs and period, at once.
    #[test]
    fn chronos_jobs_are_scheduled_as_many_times_as_they_iterate() {
        for (quick, expected) in [
            (true, vec!["R3//PT12S"]),
            (false, vec!["R4//PT20S", "R5//PT20S"]),
        ] {
            let schedules: Vec<String> = jobs(quick)
                .iter()
                .filter_map(|j| {
                    let v = j.render(1, false).expect("renders");
                    let s = v["schedule"].as_str()?.to_owned();
                    assert!(s.starts_with(&format!("R{}//", j.iterations())), "{s}");
                    Some(s)
                })
                .collect();
            assert_eq!(schedules, expected);
        }
    }

    /// `--policy static` runs the supervisor with the static policy (the jobs as filed): the
    /// baseline the predictive policy is compared with on the same jobs.
    #[test]
    fn every_policy_of_the_command_line_reaches_the_supervisor() {
        use clap::ValueEnum;
        for p in PolicyArg::value_variants() {
            let toml = supervisor_config(*p, Timing::for_run(true));
            assert!(
                toml.contains(&format!("policy = \"{}\"", p.as_str())),
                "{toml}"
            );
        }
        let names: Vec<&str> = PolicyArg::value_variants()
            .iter()
            .map(|p| p.as_str())
            .collect();
        assert_eq!(names, ["thesis", "predictive", "static"]);
    }
}
