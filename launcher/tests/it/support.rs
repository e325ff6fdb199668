//! Shared helpers: paths of the example jobs and test data, the workspace binaries the end-to-end
//! tests run on the testbed, and a programmable recording HTTP server standing in for the
//! supervisor, Marathon or Chronos.

use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of `examples/jobs`.
pub(crate) fn example(rel: &str) -> PathBuf {
    workspace().join("examples/jobs").join(rel)
}

/// A file of `launcher/tests/data`.
pub(crate) fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// `(stdout, stderr)` of every task sandbox under `work` (the testbed's work directory), oldest
/// first.
pub(crate) fn sandboxes(work: &Path) -> Vec<(String, String)> {
    testkit::sandbox::sandboxes(work)
        .into_iter()
        .map(|s| (s.stdout, s.stderr))
        .collect()
}

pub(crate) use testkit::CatchUnwind;

/// Reads a JSON file.
pub(crate) fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Recorded {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body of {} {} is not JSON ({e}): {:?}",
                self.method, self.path, self.body
            )
        })
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a fake answers: status, and a body (sent as JSON when it parses as JSON).
pub(crate) type Answer = (u16, String);

type Handler = dyn Fn(&Recorded, usize) -> Answer + Send + Sync;
type Log = Arc<Mutex<Vec<Recorded>>>;
type Shared = (Log, Arc<Handler>);

/// A recording HTTP server on a fresh loopback port; stops when dropped.
pub(crate) struct Fake {
    pub(crate) url: String,
    log: Arc<Mutex<Vec<Recorded>>>,
    handle: JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Fake {
    /// Starts a server answering every request with `handler(request, index)`, where `index`
    /// counts the requests received so far (0 for the first).
    pub(crate) async fn start(
        handler: impl Fn(&Recorded, usize) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let state = (Arc::clone(&log), handler);
        let router = Router::new().fallback(
            |axum::extract::State((log, handler)): axum::extract::State<Shared>,
             method: Method,
             uri: Uri,
             headers: HeaderMap,
             body: Bytes| async move {
                let rec = Recorded {
                    method,
                    path: uri.path().to_owned(),
                    headers,
                    body,
                };
                let index = {
                    let mut l = lock(&log);
                    l.push(rec.clone());
                    l.len() - 1
                };
                let (status, body) = handler(&rec, index);
                let status = StatusCode::from_u16(status).expect("valid status");
                let ct = if serde_json::from_str::<Value>(&body).is_ok() {
                    "application/json"
                } else {
                    "text/plain"
                };
                let resp: Response =
                    (status, [(axum::http::header::CONTENT_TYPE, ct)], body).into_response();
                resp
            },
        );
        let router = router.with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let handle = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("fake server");
        });
        Self {
            url: format!("http://{addr}"),
            log,
            handle,
        }
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        lock(&self.log).clone()
    }

    /// The requests whose method and path match.
    pub(crate) fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method.as_str() == method && r.path == path)
            .collect()
    }
}

/// A loopback URL nothing listens on.
pub(crate) fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}
