//! One controller: a run of the simulator, recorded — what the supervisor would have been told
//! (registrations, starts and restores, CPU samples, progress reports, node heartbeats, ends)
//! and what the simulator's controller decided — replayed through the supervisor's API on paused
//! time, with a fake Marathon, gives the same decisions at the same instants: the same class,
//! the same action, the same reason.

use axum::http::StatusCode;
use qos_core::job::Observation;
use qos_core::policy::Policy;
use qos_core::predictive::ResizeMode;
use qos_core::sim::{
    ClusterSpec, JobSpec, Recorded, Scenario, Sharing, SimConfig, WorkSpec, simulate_recorded,
};
use qos_core::spec::{Deadline, QosSpec};
use qos_core::speedup::SpeedModel;
use qos_core::{Cpus, Decision};
use serde_json::{Value, json};
use supervisor::{Clock, StoreMode};
use tokio::time::{Duration, Instant, sleep_until};

use crate::support::{Harness, Opts, T0, uuid};

/// One Marathon job on one 2-CPU node, filed at 0.5 CPU: its declared 80 CPU-s are 150 in
/// truth, due 150 s after submission — it must be grown, by a real restart (it checkpoints, and
/// reports its progress as LINPACK does).
fn scenario() -> Scenario {
    Scenario {
        name: "replay".into(),
        seed: 1,
        cluster: ClusterSpec {
            nodes: vec![Cpus::from_milli(2000)],
            sharing: Sharing::Quota,
            agents: false,
        },
        jobs: vec![JobSpec {
            name: "replay".into(),
            submit_at: 0.5,
            qos: QosSpec {
                duration: 80.0,
                deadline: Deadline::Relative(150.0),
                desv_deadline: 0.1,
            },
            cpus: Cpus::from_milli(500),
            threads: Cpus::from_milli(2000),
            work: WorkSpec::Continuous {
                speed: SpeedModel::new(150.0, 0.8),
                deploy: 2.0,
                restart_costs: vec![5.0],
                reports_progress: true,
                checkpoint: true,
            },
            kind: "marathon/progress/checkpoint/amdahl".into(),
        }],
    }
}

/// `(seconds, class, action, reason)` of a decision.
type Row = (f64, String, Value, String);

fn row(at: f64, d: &Decision) -> Row {
    (
        (at * 1000.0).round() / 1000.0,
        d.class.as_str().to_owned(),
        serde_json::to_value(d.action).unwrap_or_default(),
        d.reason.clone(),
    )
}

#[tokio::test(start_paused = true)]
async fn the_supervisor_decides_what_the_simulator_decided() {
    let policy = Policy::default();
    let cfg = SimConfig {
        resize_mode: ResizeMode::Restart,
        ..SimConfig::default()
    };
    let (result, log) = simulate_recorded(&scenario(), &policy, cfg);
    assert!(result.jobs[0].met, "{:#?}", result.jobs);
    assert!(
        result.jobs[0].usage.restarts >= 1,
        "the run grows it by a restart"
    );

    let h = Harness::start(Opts {
        policy,
        store: StoreMode::Inline,
        clock: Some(Clock::starting_at(T0)),
        configure: Some(Box::new(|c| {
            c.control.period = policy_period();
            // Every decision in the history, so all can be compared.
            c.control.history_hold_interval = 0.0;
        })),
        ..Opts::default()
    })
    .await;
    let u = uuid(70);
    h.marathon.add_app("/replay", 0.5);
    let node =
        json!({"id": "node-1", "hostname": "node-1", "cpus": 2.0, "memory_bytes": 1u64 << 30});
    let (st, v) = h
        .admin("POST", "/api/v1/nodes/register", Some(&node.to_string()))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    let start = Instant::now();
    let mut expected: Vec<Row> = Vec::new();
    for event in &log {
        let at = match event {
            Recorded::Submitted { at, .. }
            | Recorded::Observed { at, .. }
            | Recorded::Node { at, .. }
            | Recorded::Decided { at, .. } => *at,
        };
        sleep_until(start + Duration::from_secs_f64(at)).await;
        let now = T0 + at;
        let (status, body) = match event {
            Recorded::Submitted { .. } => {
                let reg = json!({"uuid": u, "name": "/replay", "framework": "marathon",
                    "qos": {"duration": 80, "deadline": 150, "desv_deadline": 0.1},
                    "cpus": 0.5, "submitted_at": now, "checkpoint": "app"});
                h.admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
                    .await
            }
            Recorded::Node { capacity, held, .. } => {
                let total: f64 = held.iter().map(|(_, c)| c.as_f64()).sum();
                let by_job: serde_json::Map<String, Value> = held
                    .iter()
                    .map(|(_, c)| (u.clone(), json!(c.as_f64())))
                    .collect();
                let beat = json!({"at": now, "free_cpus": capacity.as_f64() - total,
                    "allocated_cpus": total, "allocated_by_job": by_job, "load1": total});
                h.admin(
                    "POST",
                    "/api/v1/nodes/node-1/heartbeat",
                    Some(&beat.to_string()),
                )
                .await
            }
            Recorded::Observed { observation, .. } => match observation {
                Observation::Started { restored, .. } => {
                    let body = json!({"uuid": u, "started_at": now, "restored": restored, "strategy": "app"});
                    h.call("POST", "/initMarathonApp", Some(&body.to_string()), &[])
                        .await
                }
                Observation::CpuSample {
                    source,
                    cumulative_secs,
                    ..
                } => {
                    let batch = json!({"node": "node-1", "samples": [{"uuid": u, "container_id": source,
                        "at": now, "user_secs": cumulative_secs, "system_secs": 0.0,
                        "total_secs": cumulative_secs}]});
                    h.admin("POST", "/api/v1/samples", Some(&batch.to_string()))
                        .await
                }
                Observation::Progress { fraction, .. } => {
                    let p = json!({"fraction": fraction, "at": now});
                    h.admin(
                        "POST",
                        &format!("/api/v1/jobs/{u}/progress"),
                        Some(&p.to_string()),
                    )
                    .await
                }
                Observation::Ended { .. } => {
                    let end = json!({"uuid": u, "finished_at": now});
                    h.call("POST", "/endMarathonApp", Some(&end.to_string()), &[])
                        .await
                }
                other => panic!("not in this scenario: {other:?}"),
            },
            Recorded::Decided { decision, .. } => {
                expected.push(row(at, decision));
                continue;
            }
        };
        assert!(status.is_success(), "{event:?}: {status} {body}");
    }
    // Let the last decisions be taken.
    sleep_until(start + Duration::from_secs_f64(log_end(&log) + 1.0)).await;

    let (st, hist) = h
        .admin("GET", &format!("/api/v1/jobs/{u}/history"), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{hist}");
    let got: Vec<Row> = hist
        .as_array()
        .expect("history rows")
        .iter()
        .filter(|r| r["kind"] == "decision")
        .map(|r| {
            (
                ((r["at"].as_f64().unwrap_or(0.0) - T0) * 1000.0).round() / 1000.0,
                r["class"].as_str().unwrap_or_default().to_owned(),
                r["action"].clone(),
                r["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    // The completion is taken once the job has ended; both sides end it the same way.
    let expected: Vec<Row> = expected
        .into_iter()
        .filter(|(_, _, a, _)| a["action"] != "complete")
        .collect();
    let got: Vec<Row> = got
        .into_iter()
        .filter(|(_, _, a, _)| a["action"] != "complete")
        .collect();
    assert!(
        expected.iter().any(|(_, _, a, _)| a["action"] == "resize") && expected.len() >= 10,
        "a run with a resize and a decision every 10 s: {expected:#?}"
    );
    for (k, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(
            e, g,
            "decision {k} differs\nsimulator:  {e:?}\nsupervisor: {g:?}"
        );
    }
    assert_eq!(
        expected.len(),
        got.len(),
        "simulator {expected:#?}\nsupervisor {got:#?}"
    );
    h.sup.stop().await;
}

/// The predictive policy's evaluation period of continuous jobs (the simulator's).
fn policy_period() -> f64 {
    qos_core::policy::DEFAULT_PREDICTIVE_PERIOD
}

fn log_end(log: &[Recorded]) -> f64 {
    log.iter()
        .map(|e| match e {
            Recorded::Submitted { at, .. }
            | Recorded::Observed { at, .. }
            | Recorded::Node { at, .. }
            | Recorded::Decided { at, .. } => *at,
        })
        .fold(0.0, f64::max)
}
