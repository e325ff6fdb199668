//! A supervisor with fake frameworks, and helpers to call its router.

#![allow(
    dead_code,
    reason = "shared by test modules that each use a part of it"
)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use qos_core::policy::Policy;
use qos_core::wire::{ResizeRequest, ResizeResult};
use serde_json::Value;
use supervisor::config::AuthConfig;
use supervisor::{Clock, Config, Deps, NodeAgent, StoreMode, Supervisor};
use testkit::{FakeChronos, FakeMarathon};
use tower::ServiceExt;

/// Changes the configuration before start.
pub(crate) type Configure = Box<dyn FnOnce(&mut Config)>;

pub(crate) const ADMIN: &str = "admin-token-0123456789";
pub(crate) const AGENT: &str = "agent-token-0123456789";
/// The supervisor's clock starts here in tests (2017-07-14, when the thesis ran).
pub(crate) const T0: f64 = 1_500_000_000.0;

/// A node agent that records resizes and grants them.
#[derive(Debug, Default)]
pub(crate) struct FakeAgent {
    pub(crate) calls: Mutex<Vec<(String, String, ResizeRequest)>>,
    pub(crate) fail: Mutex<bool>,
}

#[async_trait]
impl NodeAgent for FakeAgent {
    async fn resize(
        &self,
        agent_url: &str,
        token: &str,
        req: &ResizeRequest,
    ) -> Result<ResizeResult, String> {
        self.calls
            .lock()
            .unwrap()
            .push((agent_url.to_owned(), token.to_owned(), req.clone()));
        if *self.fail.lock().unwrap() {
            return Err("agent refused (injected)".into());
        }
        Ok(ResizeResult {
            uuid: req.uuid.clone(),
            container_id: format!("c-{}", req.uuid),
            cpus: req.cpus,
        })
    }
}

pub(crate) struct Harness {
    pub(crate) sup: Supervisor,
    pub(crate) marathon: Arc<FakeMarathon>,
    pub(crate) chronos: Arc<FakeChronos>,
    pub(crate) agent: Arc<FakeAgent>,
    pub(crate) router: axum::Router,
    pub(crate) _dir: Option<tempfile::TempDir>,
    pub(crate) db: std::path::PathBuf,
}

pub(crate) struct Opts {
    pub(crate) policy: Policy,
    pub(crate) auth: AuthConfig,
    pub(crate) store: StoreMode,
    pub(crate) clock: Option<Clock>,
    pub(crate) configure: Option<Configure>,
    pub(crate) db: Option<std::path::PathBuf>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            auth: AuthConfig::default(),
            store: StoreMode::Thread,
            clock: None,
            configure: None,
            db: None,
        }
    }
}

impl Harness {
    pub(crate) async fn start(opts: Opts) -> Self {
        let (dir, db) = match opts.db {
            Some(p) => (None, p),
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let db = dir.path().join("supervisor.db");
                (Some(dir), db)
            }
        };
        Self::start_with(
            opts.policy,
            opts.auth,
            opts.store,
            opts.clock,
            opts.configure,
            dir,
            db,
            FakeMarathon::new(),
            FakeChronos::new(),
            Arc::new(FakeAgent::default()),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start_with(
        policy: Policy,
        auth: AuthConfig,
        store: StoreMode,
        clock: Option<Clock>,
        configure: Option<Configure>,
        dir: Option<tempfile::TempDir>,
        db: std::path::PathBuf,
        marathon: Arc<FakeMarathon>,
        chronos: Arc<FakeChronos>,
        agent: Arc<FakeAgent>,
    ) -> Self {
        let mut config = Config::for_tests(&db, policy);
        config.auth = auth;
        if let Some(f) = configure {
            f(&mut config);
        }
        let deps = Deps {
            marathon: Some(marathon.clone()),
            chronos: Some(chronos.clone()),
            agent: agent.clone(),
            clock: clock.unwrap_or_else(|| Clock::starting_at(T0)),
            store,
        };
        let sup = Supervisor::start(config, deps)
            .await
            .expect("supervisor starts");
        let router = sup.router();
        Self {
            sup,
            marathon,
            chronos,
            agent,
            router,
            _dir: dir,
            db,
        }
    }

    /// Calls the router; returns the status and the body (JSON when it parses, else a string).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        call(
            &self.router,
            method,
            path,
            body.map(|b| b.as_bytes().to_vec()),
            headers,
        )
        .await
    }

    pub(crate) async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let auth = format!("Bearer {ADMIN}");
        self.call(
            method,
            path,
            body,
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
        )
        .await
    }
}

pub(crate) async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body.map_or_else(Body::empty, Body::from))
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .expect("body");
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

/// Asserts an error answer: status, code and field.
pub(crate) fn assert_error(
    got: &(StatusCode, Value),
    status: StatusCode,
    code: &str,
    field: Option<&str>,
) {
    assert_eq!(got.0, status, "{:?}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{:?}", got.1);
    match field {
        Some(f) => assert_eq!(got.1["error"]["field"], f, "{:?}", got.1),
        None => assert!(got.1["error"].get("field").is_none(), "{:?}", got.1),
    }
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

pub(crate) fn uuid(n: u32) -> String {
    format!("{n:032x}")
}
