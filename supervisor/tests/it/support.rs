//! A supervisor with fake frameworks, and helpers to call its router; the real binaries as child
//! processes (the supervisor's, others' started by the test) and a seeded job mix for the `/ui`
//! test.

#![allow(
    dead_code,
    reason = "shared by test modules that each use a part of it"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use qos_core::policy::Policy;
use qos_core::wire::{ResizeRequest, ResizeResult};
use serde_json::{Value, json};
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

impl Opts {
    /// With the admin token [`ADMIN`] required; `insecure`: the thesis routes stay open.
    pub(crate) fn admin_token(insecure: bool) -> Self {
        Self {
            auth: AuthConfig {
                admin_token: Some(ADMIN.into()),
                insecure,
                ..AuthConfig::default()
            },
            ..Self::default()
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

    /// Posts the thesis report `body` to `path` and asserts the supervisor applied it.
    pub(crate) async fn applied(&self, path: &str, body: &str) {
        let (s, r) = self.call("POST", path, Some(body), &[]).await;
        assert_eq!(
            (s, r["status"].as_str()),
            (StatusCode::OK, Some("applied")),
            "{path}: {r}"
        );
    }

    /// The status [`Harness::call`] answers.
    pub(crate) async fn status(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> StatusCode {
        self.call(method, path, body, headers).await.0
    }

    /// Serves the router over TCP on a free loopback port: its base URL and the server task.
    pub(crate) async fn serve_tcp(&self) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = self.router.clone();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        (url, server)
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

/// `GET url` with `http`, its body as JSON (panics on a transport or decoding error).
pub(crate) async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
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

pub(crate) use testkit::services::{Proc, start_json_line};

/// `target/` (the test binary is `target/<profile>/deps/it-…`).
pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// `name` on the PATH.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Now, epoch seconds.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Starts the supervisor binary on a free loopback port (open API), its database and log
/// (`supervisor.log`) in `dir`, and returns its URL.
pub(crate) fn start_supervisor(dir: &Path, args: &[&std::ffi::OsStr]) -> (Proc, String) {
    let (p, v) = start_json_line(
        Command::new(env!("CARGO_BIN_EXE_supervisor"))
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(dir.join("supervisor.db"))
            .args(args)
            .env("RUST_LOG", "info"),
        "supervisor",
        &dir.join("supervisor.log"),
    );
    let url = v["url"].as_str().unwrap().to_owned();
    (p, url)
}

/// Registers and drives a small job mix through the supervisor's thesis routes (synthetic
/// reports, no framework runs them), for the `/ui` test: a running and a finished Chronos job, a
/// running and a finished Marathon job. Returns the UUID of the running Marathon job.
pub(crate) async fn seed_jobs(url: &str) -> String {
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{url}{path}")).body(body.to_string());
        async move {
            let r = req.send().await.unwrap();
            assert!(
                r.status().is_success(),
                "{} {:?}",
                r.status(),
                r.text().await
            );
        }
    };
    let t0 = now();
    let (c1, c2, m1, m2) = (uuid(0xc1), uuid(0xc2), uuid(0xa1), uuid(0xa2));
    // Chronos: 3 iterations, one reported (a prediction); and 1 iteration, finished.
    post("/initTask", json!({"framework": "chronos", "name": "linpack-chronos-1", "job_duration": 20, "deadline": t0 + 120.0, "desv_deadline": 0.2, "uuid": c1, "iterations": 3})).await;
    post("/updateTask", json!({"name": "linpack-chronos-1", "started_at": t0 - 30.0, "finished_at": t0 - 2.0, "hostname": "node-prom", "uuid": c1})).await;
    post("/initTask", json!({"framework": "chronos", "name": "linpack-chronos-2", "job_duration": 5, "deadline": t0 + 60.0, "desv_deadline": 0.2, "uuid": c2, "iterations": 1})).await;
    post("/updateTask", json!({"name": "linpack-chronos-2", "started_at": t0 - 6.0, "finished_at": t0 - 1.0, "hostname": "node-prom", "uuid": c2})).await;
    // Marathon: one running (its container is on the collector's node), one finished.
    post("/initTask", json!({"framework": "marathon", "name": "linpack-marathon-1", "job_duration": 40, "deadline": 120, "desv_deadline": 0.1, "uuid": m1})).await;
    post(
        "/initMarathonApp",
        json!({"uuid": m1, "started_at": t0 - 5.0}),
    )
    .await;
    post("/initTask", json!({"framework": "marathon", "name": "linpack-marathon-2", "job_duration": 4, "deadline": 60, "desv_deadline": 0.1, "uuid": m2})).await;
    post(
        "/initMarathonApp",
        json!({"uuid": m2, "started_at": t0 - 5.0}),
    )
    .await;
    post(
        "/endMarathonApp",
        json!({"uuid": m2, "finished_at": t0, "exit_code": 0}),
    )
    .await;
    m1
}
