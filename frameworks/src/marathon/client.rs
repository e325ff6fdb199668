//! The Marathon v2 REST client.

use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::model::{
    AppChange, AppId, CreatedApp, Deployment, DeploymentResult, MarathonApp, MarathonInfo,
    MarathonTask,
};
use crate::credentials::Credentials;
use crate::error::FrameworkError;
use crate::http::{ClientConfig, Flavor, HttpCore, Request, Response};

/// Header Marathon sets on every state-changing answer.
pub const DEPLOYMENT_HEADER: &str = "Marathon-Deployment-Id";

/// How a full update is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpdateOptions {
    /// `?force=true`: cancel deployments that lock the app. Marathon's docs reserve it for
    /// failed deployments.
    pub force: bool,
    /// `true`: `?partialUpdate=true`, fields left out keep their values. `false` (the default for
    /// [`MarathonClient::update_app`]): `?partialUpdate=false`, the body replaces the definition.
    /// Marathon 1.4 ignores the parameter; the body carries every field either way.
    pub partial: bool,
}

/// Client for Marathon's `/v2` API (1.4–1.10).
#[derive(Debug, Clone)]
pub struct MarathonClient {
    http: HttpCore,
}

#[derive(Deserialize)]
struct AppEnvelope {
    app: MarathonApp,
}

#[derive(Deserialize)]
struct AppsEnvelope {
    apps: Vec<MarathonApp>,
}

#[derive(Deserialize)]
struct TasksEnvelope {
    tasks: Vec<MarathonTask>,
}

impl MarathonClient {
    crate::http::client_constructors!(Flavor::Marathon);

    /// The base URL requests go to.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        self.http.base()
    }

    /// The settings in use.
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        self.http.config()
    }

    fn app_url(&self, id: &AppId, suffix: &[&str]) -> Url {
        let mut segments: Vec<&str> = vec!["v2", "apps"];
        segments.extend(id.segments());
        segments.extend_from_slice(suffix);
        self.http.endpoint(segments)
    }

    /// `GET /v2/info`.
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn info(&self) -> Result<MarathonInfo, FrameworkError> {
        let resp = self
            .http
            .execute(Request::get(self.http.endpoint(["v2", "info"])))
            .await?;
        resp.json("Marathon info (a JSON object)")
    }

    /// `GET /v2/apps`.
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn list_apps(&self) -> Result<Vec<MarathonApp>, FrameworkError> {
        let resp = self
            .http
            .execute(Request::get(self.http.endpoint(["v2", "apps"])))
            .await?;
        Ok(resp
            .json::<AppsEnvelope>("an app list ({\"apps\": [...]})")?
            .apps)
    }

    /// `GET /v2/apps/{id}`: the app with Marathon's embeds (tasks, counts, deployments,
    /// lastTaskFailure). `id` may be nested (`/grp/sub/app`) and may lack its leading `/`.
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] for an unknown app, [`FrameworkError::InvalidInput`] for an
    /// invalid id, or any other [`FrameworkError`].
    pub async fn get_app(&self, id: &str) -> Result<MarathonApp, FrameworkError> {
        let id = AppId::parse(id)?;
        let resp = self
            .http
            .execute(Request::get(self.app_url(&id, &[])))
            .await?;
        Ok(resp.json::<AppEnvelope>("an app ({\"app\": {...}})")?.app)
    }

    /// `POST /v2/apps`. The id is normalised (leading `/` added) before sending. Not retried
    /// after the request may have reached Marathon: a second create would fail with 409.
    ///
    /// # Errors
    /// [`FrameworkError::Conflict`] when the id exists, [`FrameworkError::Invalid`] with
    /// Marathon's details when the definition is refused, or any other [`FrameworkError`].
    pub async fn create_app(&self, app: &MarathonApp) -> Result<CreatedApp, FrameworkError> {
        let id = app.app_id()?;
        let mut body = app.as_map().clone();
        body.insert("id".to_owned(), Value::String(id.as_str().to_owned()));
        let req = Request::json(
            Method::POST,
            self.http.endpoint(["v2", "apps"]),
            &body,
            false,
        )?;
        let resp = self.http.execute(req).await?;
        let stored: MarathonApp = resp.json("the created app (a JSON object)")?;
        let deployment_id = resp
            .header(DEPLOYMENT_HEADER)
            .map(str::to_owned)
            .or_else(|| stored.deployment_ids().into_iter().next());
        Ok(CreatedApp {
            app: stored,
            deployment_id,
        })
    }

    /// Full update: `PUT /v2/apps/{id}` with [`MarathonApp::update_body`] (read-only keys
    /// stripped, everything else unchanged). Use after a GET to change several fields at once.
    ///
    /// # Errors
    /// [`FrameworkError::Locked`] while another deployment holds the app (unless `force`),
    /// [`FrameworkError::Invalid`], or any other [`FrameworkError`].
    pub async fn update_app(
        &self,
        app: &MarathonApp,
        options: UpdateOptions,
    ) -> Result<DeploymentResult, FrameworkError> {
        let id = app.app_id()?;
        let mut body = app.update_body();
        body.insert("id".to_owned(), Value::String(id.as_str().to_owned()));
        self.put(&id, &body, options).await
    }

    /// Partial update: `PUT /v2/apps/{id}` with only the given fields (Marathon's
    /// `partialUpdate=true` default; the other fields keep their values).
    ///
    /// # Errors
    /// As [`MarathonClient::update_app`].
    pub async fn patch_app(
        &self,
        id: &str,
        patch: &Map<String, Value>,
        force: bool,
    ) -> Result<DeploymentResult, FrameworkError> {
        let id = AppId::parse(id)?;
        self.put(
            &id,
            patch,
            UpdateOptions {
                force,
                partial: true,
            },
        )
        .await
    }

    /// A one-field partial update: [`MarathonClient::patch_app`] with only the field `change`
    /// sets.
    ///
    /// # Errors
    /// As [`AppChange::field`]; otherwise as [`MarathonClient::update_app`].
    pub async fn change_app(
        &self,
        id: &str,
        change: AppChange,
    ) -> Result<DeploymentResult, FrameworkError> {
        let (field, value) = change.field()?;
        let patch = Map::from_iter([(field.to_owned(), value)]);
        self.patch_app(id, &patch, change.force()).await
    }

    async fn put(
        &self,
        id: &AppId,
        body: &Map<String, Value>,
        options: UpdateOptions,
    ) -> Result<DeploymentResult, FrameworkError> {
        let mut url = self.app_url(id, &[]);
        {
            let mut q = url.query_pairs_mut();
            if !options.partial {
                q.append_pair("partialUpdate", "false");
            }
            if options.force {
                q.append_pair("force", "true");
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let resp = self
            .http
            .execute(Request::json(Method::PUT, url, body, true)?)
            .await?;
        deployment_result(&resp)
    }

    /// `DELETE /v2/apps/{id}[?force=true]`: stops the app's tasks and removes it.
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] for an unknown app (also when a retried delete already
    /// succeeded), or any other [`FrameworkError`].
    pub async fn delete_app(
        &self,
        id: &str,
        force: bool,
    ) -> Result<DeploymentResult, FrameworkError> {
        self.app_action(Method::DELETE, id, &[], force, true).await
    }

    /// `POST /v2/apps/{id}/restart[?force=true]`: restarts every task without changing the app.
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn restart_app(
        &self,
        id: &str,
        force: bool,
    ) -> Result<DeploymentResult, FrameworkError> {
        self.app_action(Method::POST, id, &["restart"], force, false)
            .await
    }

    /// A bodiless `method` on the app's URL (`segments` after its id, `?force=true` with
    /// `force`) that starts a deployment; `idempotent` requests are retried.
    async fn app_action(
        &self,
        method: Method,
        id: &str,
        segments: &[&str],
        force: bool,
        idempotent: bool,
    ) -> Result<DeploymentResult, FrameworkError> {
        let id = AppId::parse(id)?;
        let mut url = self.app_url(&id, segments);
        if force {
            url.query_pairs_mut().append_pair("force", "true");
        }
        let resp = self
            .http
            .execute(Request::without_body(method, url, idempotent))
            .await?;
        deployment_result(&resp)
    }

    /// `GET /v2/apps/{id}/tasks`.
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] for an unknown app, or any other [`FrameworkError`].
    pub async fn app_tasks(&self, id: &str) -> Result<Vec<MarathonTask>, FrameworkError> {
        let id = AppId::parse(id)?;
        let resp = self
            .http
            .execute(Request::get(self.app_url(&id, &["tasks"])))
            .await?;
        Ok(resp
            .json::<TasksEnvelope>("a task list ({\"tasks\": [...]})")?
            .tasks)
    }

    /// `GET /v2/deployments`: deployments still running (a finished one is gone from the list).
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn deployments(&self) -> Result<Vec<Deployment>, FrameworkError> {
        let resp = self
            .http
            .execute(Request::get(self.http.endpoint(["v2", "deployments"])))
            .await?;
        resp.json("a JSON array of deployments")
    }
}

/// Reads `{"deploymentId", "version"}`, falling back to the `Marathon-Deployment-Id` header.
fn deployment_result(resp: &Response) -> Result<DeploymentResult, FrameworkError> {
    let body: Option<Map<String, Value>> = if resp.body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(resp.json("a deployment result ({\"deploymentId\", \"version\"})")?)
    };
    let from_body = body
        .as_ref()
        .and_then(|b| b.get("deploymentId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let deployment_id = from_body
        .or_else(|| resp.header(DEPLOYMENT_HEADER).map(str::to_owned))
        .ok_or_else(|| {
            resp.decode_error(
                "a deployment result",
                "neither a \"deploymentId\" field nor a Marathon-Deployment-Id header",
            )
        })?;
    let version = body
        .as_ref()
        .and_then(|b| b.get("version"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(DeploymentResult {
        deployment_id,
        version,
    })
}
