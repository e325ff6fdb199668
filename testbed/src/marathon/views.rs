//! How Marathon shows its state: an app (`tasksRunning`, `tasksHealthy`, `deployments`, the
//! embedded tasks and `lastTaskFailure`), a task (`healthCheckResults` included) and a deployment
//! (its steps and current actions).

use serde_json::{Value, json};

use super::{Action, Deployment, MState, MTask, Marathon};
use crate::task::{Placement, TaskState};

impl Marathon {
    pub(super) fn task_json(app_id: &str, t: &MTask) -> Value {
        let unplaced = Placement::default();
        let p = t.placement.as_ref().unwrap_or(&unplaced);
        let mut v = json!({
            "appId": app_id,
            "id": t.id,
            "host": p.host,
            "slaveId": p.agent_id,
            "state": t.state.mesos_name(),
            "stagedAt": t.staged_at,
            "startedAt": t.started_at,
            "version": t.version,
            "ports": p.ports,
            "servicePorts": t.service_ports,
            "ipAddresses": [{"ipAddress": p.host, "protocol": "IPv4"}],
            "localVolumes": [],
            "role": "*",
        });
        if !t.health.is_empty() {
            let instance = t.id.rsplit_once("._app").map_or(t.id.as_str(), |(i, _)| i);
            v["healthCheckResults"] =
                Value::Array(t.health.iter().map(|h| h.json(instance)).collect());
        }
        v
    }

    pub(super) fn app_info(&self, st: &MState, app_id: &str, embed_tasks: bool) -> Option<Value> {
        let app = st.apps.get(app_id).filter(|a| !a.deleted)?;
        let mut m = app.def.clone();
        m.insert("version".into(), json!(app.version));
        m.insert(
            "versionInfo".into(),
            json!({"lastScalingAt": app.last_scaling_at, "lastConfigChangeAt": app.config_version}),
        );
        let placed: Vec<&MTask> = app
            .tasks
            .values()
            .filter(|t| t.placement.is_some())
            .collect();
        let count = |s: TaskState| placed.iter().filter(|t| t.state == s).count();
        m.insert(
            "tasksStaged".into(),
            json!(count(TaskState::Staging) + count(TaskState::Starting)),
        );
        m.insert("tasksRunning".into(), json!(count(TaskState::Running)));
        let running: Vec<&&MTask> = placed
            .iter()
            .filter(|t| t.state == TaskState::Running && !t.health.is_empty())
            .collect();
        m.insert(
            "tasksHealthy".into(),
            json!(
                running
                    .iter()
                    .filter(|t| t.health.iter().all(|h| h.alive))
                    .count()
            ),
        );
        m.insert(
            "tasksUnhealthy".into(),
            json!(
                running
                    .iter()
                    .filter(|t| t
                        .health
                        .iter()
                        .any(|h| !h.alive && h.last_failure.is_some()))
                    .count()
            ),
        );
        m.insert(
            "deployments".into(),
            json!(
                app.deployment
                    .iter()
                    .map(|d| json!({"id": d}))
                    .collect::<Vec<_>>()
            ),
        );
        if embed_tasks {
            m.insert(
                "tasks".into(),
                Value::Array(placed.iter().map(|t| Self::task_json(app_id, t)).collect()),
            );
            if let Some(f) = &app.last_task_failure {
                m.insert("lastTaskFailure".into(), f.clone());
            }
        }
        Some(Value::Object(m))
    }

    pub(super) fn deployment_json(d: &Deployment) -> Value {
        let steps: Vec<Vec<&str>> = match d.action {
            Action::Start => vec![vec!["StartApplication"], vec!["ScaleApplication"]],
            Action::Restart => vec![vec!["RestartApplication"]],
            Action::Scale => vec![vec!["ScaleApplication"]],
            Action::Stop => vec![vec!["StopApplication"]],
        };
        let current = steps.last().cloned().unwrap_or_default();
        json!({
            "id": d.id,
            "version": d.version,
            "affectedApps": [d.app],
            "affectedPods": [],
            "steps": steps.iter().map(|s| json!({"actions": s.iter().map(|a| json!({"action": a, "app": d.app})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            "currentActions": current.iter().map(|a| json!({"action": a, "app": d.app, "readinessCheckResults": []})).collect::<Vec<_>>(),
            "currentStep": steps.len(),
            "totalSteps": steps.len(),
        })
    }
}
