//! An in-memory Marathon.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use frameworks::{
    AppChange, AppId, CreatedApp, Deployment, DeploymentResult, FrameworkError, MarathonApi,
    MarathonApp, MarathonTask,
};
use serde_json::json;

use crate::not_found;
use crate::recorder::Recorder;

/// One call the fake received.
#[derive(Debug, Clone, PartialEq)]
pub enum MarathonCall {
    /// `get_app`.
    GetApp(String),
    /// `create_app`.
    CreateApp(String),
    /// `set_app_cpus`.
    SetCpus {
        /// App id.
        id: String,
        /// Requested CPUs.
        cpus: f64,
        /// `?force=true`.
        force: bool,
    },
    /// `scale_app`.
    Scale {
        /// App id.
        id: String,
        /// Requested instances.
        instances: u32,
    },
    /// `delete_app`.
    Delete {
        /// App id.
        id: String,
        /// `?force=true`.
        force: bool,
    },
    /// `app_tasks`.
    Tasks(String),
    /// `deployments`.
    Deployments,
}

#[derive(Debug, Default)]
struct State {
    apps: BTreeMap<String, MarathonApp>,
    /// App id → deployment that locks it (changes refused unless forced).
    locks: BTreeMap<String, String>,
    deployments: u64,
}

/// An in-memory Marathon: apps by id, every call recorded, failures on demand.
#[derive(Debug, Default)]
pub struct FakeMarathon {
    rec: Recorder<State, MarathonCall>,
}

fn canon(id: &str) -> String {
    AppId::parse(id).map_or_else(|_| id.to_owned(), |a| a.as_str().to_owned())
}

fn url(id: &str) -> String {
    format!("http://marathon.fake/v2/apps{id}")
}

impl FakeMarathon {
    /// An empty Marathon.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds an app with `cpus` and one instance.
    pub fn add_app(&self, id: &str, cpus: f64) {
        let id = canon(id);
        let app: MarathonApp =
            serde_json::from_value(json!({"id": id, "cpus": cpus, "mem": 512, "instances": 1}))
                .unwrap_or_else(|_| {
                    MarathonApp::new(
                        &AppId::parse(&id).unwrap_or_else(|_| AppId::parse("/x").expect("valid")),
                    )
                });
        self.rec.state(|s| s.apps.insert(id, app));
    }

    /// What `read` finds in the app, if it exists.
    fn app<T>(&self, id: &str, read: impl FnOnce(&MarathonApp) -> Option<T>) -> Option<T> {
        self.rec.state(|s| s.apps.get(&canon(id)).and_then(read))
    }

    /// The app's `cpus`, if it exists.
    #[must_use]
    pub fn cpus(&self, id: &str) -> Option<f64> {
        self.app(id, MarathonApp::cpus)
    }

    /// The app's `instances`, if it exists.
    #[must_use]
    pub fn instances(&self, id: &str) -> Option<u64> {
        self.app(id, MarathonApp::instances)
    }

    /// Whether the app exists.
    #[must_use]
    pub fn exists(&self, id: &str) -> bool {
        self.rec.state(|s| s.apps.contains_key(&canon(id)))
    }

    /// Every call so far.
    #[must_use]
    pub fn calls(&self) -> Vec<MarathonCall> {
        self.rec.calls()
    }

    /// The `set_app_cpus` calls so far, as `(cpus, force)`.
    #[must_use]
    pub fn resizes(&self) -> Vec<(f64, bool)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                MarathonCall::SetCpus { cpus, force, .. } => Some((cpus, force)),
                _ => None,
            })
            .collect()
    }

    /// The next call fails with `error` (queued; one error per call).
    pub fn fail_next(&self, error: FrameworkError) {
        self.rec.fail_next(error);
    }

    /// A deployment locks the app: changes are refused with 409 unless forced.
    pub fn lock_app(&self, id: &str, deployment: &str) {
        self.rec
            .state(|s| s.locks.insert(canon(id), deployment.to_owned()));
    }

    /// Releases the lock.
    pub fn unlock_app(&self, id: &str) {
        self.rec.state(|s| s.locks.remove(&canon(id)));
    }

    /// Every call fails as unreachable while `down`.
    pub fn set_down(&self, down: bool) {
        self.rec.set_down(down);
    }

    /// Removes an app behind its users' backs (as an operator's `DELETE /v2/apps/{id}` would).
    pub fn remove_app(&self, id: &str) {
        self.rec.state(|s| s.apps.remove(&canon(id)));
    }

    fn change(
        &self,
        id: &str,
        force: bool,
        call: MarathonCall,
        f: impl FnOnce(&mut MarathonApp),
    ) -> Result<DeploymentResult, FrameworkError> {
        let id = canon(id);
        let u = url(&id);
        let mut st = self.rec.enter(call, "PUT", &u)?;
        if let Some(dep) = st.state.locks.get(&id).cloned() {
            if !force {
                return Err(FrameworkError::Locked {
                    method: "PUT".into(),
                    url: u,
                    message: "App is locked by one or more deployments. Override with the option '?force=true'.".into(),
                    deployments: vec![dep],
                });
            }
            st.state.locks.remove(&id);
        }
        let Some(app) = st.state.apps.get_mut(&id) else {
            // As Marathon: a PUT to an unknown id creates the app, and a partial body (only
            // `cpus` or `instances`) is not a valid app.
            return Err(FrameworkError::Invalid {
                method: "PUT".into(),
                url: u,
                status: 422,
                message: "Object is not valid".into(),
                details: vec![frameworks::ErrorDetail {
                    path: "/".into(),
                    errors: vec![
                        "AppDefinition must either contain one of 'cmd' or 'args', and/or a \
                         'container'."
                            .into(),
                    ],
                }],
            });
        };
        f(app);
        st.state.deployments += 1;
        let n = st.state.deployments;
        Ok(DeploymentResult {
            deployment_id: format!("dep-{n}"),
            version: Some("2026-01-01T00:00:00.000Z".into()),
        })
    }
}

#[async_trait]
impl MarathonApi for FakeMarathon {
    async fn get_app(&self, id: &str) -> Result<MarathonApp, FrameworkError> {
        let id = canon(id);
        let u = url(&id);
        let st = self
            .rec
            .enter(MarathonCall::GetApp(id.clone()), "GET", &u)?;
        st.state
            .apps
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("GET", &u, format!("App '{id}' does not exist")))
    }

    async fn create_app(&self, app: &MarathonApp) -> Result<CreatedApp, FrameworkError> {
        let id = canon(app.id().unwrap_or("/unnamed"));
        let u = url(&id);
        let mut st = self
            .rec
            .enter(MarathonCall::CreateApp(id.clone()), "POST", &u)?;
        if st.state.apps.contains_key(&id) {
            return Err(FrameworkError::Conflict {
                method: "POST".into(),
                url: u,
                message: format!("An app with id [{id}] already exists."),
            });
        }
        st.state.apps.insert(id.clone(), app.clone());
        Ok(CreatedApp {
            app: app.clone(),
            deployment_id: Some("dep-create".into()),
        })
    }

    async fn change_app(
        &self,
        id: &str,
        change: AppChange,
    ) -> Result<DeploymentResult, FrameworkError> {
        // As the client: a value Marathon would reject is refused before anything is sent.
        let (field, value) = change.field()?;
        let call = match change {
            AppChange::Cpus { cpus, force } => MarathonCall::SetCpus {
                id: canon(id),
                cpus,
                force,
            },
            AppChange::Instances { instances, .. } => MarathonCall::Scale {
                id: canon(id),
                instances,
            },
        };
        self.change(id, change.force(), call, |app| {
            app.insert(field, value);
        })
    }

    async fn delete_app(&self, id: &str, force: bool) -> Result<DeploymentResult, FrameworkError> {
        let id = canon(id);
        let u = url(&id);
        let mut st = self.rec.enter(
            MarathonCall::Delete {
                id: id.clone(),
                force,
            },
            "DELETE",
            &u,
        )?;
        if st.state.locks.contains_key(&id) && !force {
            return Err(FrameworkError::Locked {
                method: "DELETE".into(),
                url: u,
                message: "App is locked by one or more deployments.".into(),
                deployments: st.state.locks.get(&id).cloned().into_iter().collect(),
            });
        }
        st.state.locks.remove(&id);
        if st.state.apps.remove(&id).is_none() {
            return Err(not_found(
                "DELETE",
                &u,
                format!("App '{id}' does not exist"),
            ));
        }
        Ok(DeploymentResult {
            deployment_id: "dep-delete".into(),
            version: None,
        })
    }

    async fn app_tasks(&self, id: &str) -> Result<Vec<MarathonTask>, FrameworkError> {
        let id = canon(id);
        let u = url(&id);
        let st = self.rec.enter(MarathonCall::Tasks(id.clone()), "GET", &u)?;
        if st.state.apps.contains_key(&id) {
            Ok(Vec::new())
        } else {
            Err(not_found("GET", &u, format!("App '{id}' does not exist")))
        }
    }

    async fn deployments(&self) -> Result<Vec<Deployment>, FrameworkError> {
        let _st = self.rec.enter(
            MarathonCall::Deployments,
            "GET",
            "http://marathon.fake/v2/deployments",
        )?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_size_marathon_rejects_is_refused_before_any_call() {
        let fake = FakeMarathon::new();
        fake.add_app("/job", 1.0);
        for bad in [f64::NAN, f64::INFINITY, 0.0, -1.0] {
            let err = fake.set_app_cpus("/job", bad, false).await.unwrap_err();
            assert!(
                matches!(&err, FrameworkError::InvalidInput { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("cpus"), "{err}");
        }
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        assert_eq!(fake.cpus("/job"), Some(1.0));
        fake.set_app_cpus("/job", 1.5, false).await.unwrap();
        assert_eq!(fake.cpus("/job"), Some(1.5));
        assert_eq!(fake.resizes(), vec![(1.5, false)]);
    }
}
