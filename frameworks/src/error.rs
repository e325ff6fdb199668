//! The one error type every client in this crate returns, and the parser for the error bodies the
//! servers send.
//!
//! Each HTTP variant names the request (`method`, `url`) so a message printed to a user says what
//! was asked of whom. All fields are plain strings and numbers, so fakes can build any variant.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// One validation problem reported by the server (Marathon's `details[]` entry
/// `{"path": "/id", "errors": ["error.path.missing"]}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// JSON path of the offending field (`/upgradeStrategy/minimumHealthCapacity`); empty when the
    /// server did not say.
    pub path: String,
    /// The server's messages for that path.
    pub errors: Vec<String>,
}

impl fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.errors.join("; "))
        } else {
            write!(f, "{}: {}", self.path, self.errors.join("; "))
        }
    }
}

/// Everything that can go wrong talking to Marathon, Chronos or a Mesos agent.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FrameworkError {
    /// No HTTP answer at all: connection refused, DNS failure, connection reset, TLS failure.
    #[error("cannot reach {method} {url}: {reason}")]
    Unreachable {
        /// HTTP method of the request.
        method: String,
        /// Full request URL.
        url: String,
        /// The transport error, innermost cause included.
        reason: String,
    },
    /// The server did not answer within the configured timeout.
    #[error("{method} {url} got no answer within {timeout:?}")]
    Timeout {
        /// HTTP method of the request.
        method: String,
        /// Full request URL.
        url: String,
        /// The per-request timeout that expired.
        timeout: Duration,
    },
    /// HTTP 401 or 403: missing or wrong credentials, or not allowed.
    #[error(
        "{method} {url} was refused with HTTP {status}{}: {message}; check the user/password or \
         token in the credential file",
        .challenge.as_deref().map(|c| format!(" (server asks for {c})")).unwrap_or_default()
    )]
    Unauthorized {
        /// HTTP method of the request.
        method: String,
        /// Full request URL.
        url: String,
        /// 401 or 403.
        status: u16,
        /// The server's message, or the status reason when the body said nothing useful.
        message: String,
        /// The `WWW-Authenticate` header, when the server sent one (e.g. `basic realm="Mesosphere"`).
        challenge: Option<String>,
    },
    /// HTTP 404, or (Chronos) a 400 whose message says the job does not exist, or an exact-name
    /// lookup that found nothing.
    #[error("{method} {url}: not found: {message}")]
    NotFound {
        /// HTTP method of the request.
        method: String,
        /// Full request URL.
        url: String,
        /// The server's message (`App '/x' does not exist`).
        message: String,
    },
    /// Marathon HTTP 409 with a non-empty `deployments` array: another deployment holds the app.
    /// Retry later, or repeat with `force = true` to cancel the blocking deployment(s).
    #[error(
        "{method} {url}: locked by deployment(s) {}: {message}",
        .deployments.join(", ")
    )]
    Locked {
        /// HTTP method of the request.
        method: String,
        /// Full request URL.
        url: String,
        /// The server's message.
        message: String,
        /// Ids of the deployments that hold the lock.
        deployments: Vec<String>,
    },
    /// HTTP 409 without deployments, e.g. creating an app whose id already exists.
    #[error("{method} {url}: conflict (HTTP 409): {message}")]
    Conflict {
        /// HTTP method of the request.
        method: String,
        /// Full request URL.
        url: String,
        /// The server's message (`An app with id [/x] already exists.`).
        message: String,
    },
    /// HTTP 400 or 422: the server rejected the request body or parameters.
    #[error("{method} {url}: rejected as invalid (HTTP {status}): {message}{}", fmt_details(.details))]
    Invalid {
        /// HTTP method of the request.
        method: String,
        /// Full request URL.
        url: String,
        /// 400 or 422.
        status: u16,
        /// The server's message (`Object is not valid`, first line of a Chronos stack trace…).
        message: String,
        /// The server's per-field details, when it sent any.
        details: Vec<ErrorDetail>,
    },
    /// HTTP 5xx.
    #[error("{method} {url}: server error (HTTP {status}): {body}")]
    Server {
        /// HTTP method of the request.
        method: String,
        /// Full request URL.
        url: String,
        /// The 5xx status.
        status: u16,
        /// The response body (shortened).
        body: String,
    },
    /// Any other non-success status (e.g. 405, or a redirect that was not followed).
    #[error("{method} {url}: unexpected HTTP {status}: {body}")]
    UnexpectedStatus {
        /// HTTP method of the request.
        method: String,
        /// Full request URL.
        url: String,
        /// The HTTP status code of the answer.
        status: u16,
        /// The response body (shortened).
        body: String,
    },
    /// A success response whose body is not what the API documents.
    #[error("{method} {url}: cannot decode the response as {what}: {reason}")]
    Decode {
        /// HTTP method of the request.
        method: String,
        /// Full request URL.
        url: String,
        /// What was expected (`a Marathon app`, `a JSON array of Chronos jobs`…).
        what: String,
        /// The decoder's message and the start of the body.
        reason: String,
    },
    /// The caller passed something the client refuses to send (bad app id, bad job name,
    /// non-finite cpus, a job without a name…), or the client could not be built.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was wrong (`Marathon app id "/A"`).
        what: String,
        /// Why, and what would be accepted.
        reason: String,
    },
}

fn fmt_details(details: &[ErrorDetail]) -> String {
    if details.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = details.iter().map(ToString::to_string).collect();
        format!(" ({})", parts.join("; "))
    }
}

impl FrameworkError {
    /// The HTTP status the server answered with, when there was one.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { status, .. }
            | Self::Invalid { status, .. }
            | Self::Server { status, .. }
            | Self::UnexpectedStatus { status, .. } => Some(*status),
            Self::NotFound { .. } => Some(404),
            Self::Locked { .. } | Self::Conflict { .. } => Some(409),
            Self::Unreachable { .. }
            | Self::Timeout { .. }
            | Self::Decode { .. }
            | Self::InvalidInput { .. } => None,
        }
    }

    /// True for [`FrameworkError::NotFound`].
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True for errors that may go away on their own (transport problems, timeouts, 5xx, a
    /// Marathon deployment lock). The clients already retried safe requests; this tells a caller
    /// whether trying again later makes sense.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. }
                | Self::Timeout { .. }
                | Self::Server { .. }
                | Self::Locked { .. }
        )
    }

    /// Builds [`FrameworkError::InvalidInput`].
    pub fn invalid_input(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// What could be read out of an error body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ServerMessage {
    pub(crate) message: String,
    pub(crate) details: Vec<ErrorDetail>,
    pub(crate) deployments: Vec<String>,
}

/// Longest message kept from a body, in characters.
const MAX_MESSAGE_CHARS: usize = 600;

/// Shortens `s` to at most `max` characters, marking the cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

/// The first non-blank line of a text, trimmed. Chronos 3.x puts a whole Java stack trace in
/// `message`; its first line carries the reason.
fn first_line(s: &str) -> &str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// Reads an error body of any of the shapes the servers send:
/// Marathon `{"message", "details"?, "deployments"?}` (details as `[{path, errors}]`, as a string
/// for malformed JSON, or the pre-1.0 `errors: [{attribute, error}]`), Chronos
/// `{"status", "message"}` (message possibly a stack trace), the supervisor's
/// `{"error": {"code", "message", "field"?}}`, or plain text / HTML / nothing.
pub(crate) fn parse_error_body(body: &[u8]) -> ServerMessage {
    let text = String::from_utf8_lossy(body);
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return ServerMessage {
            message: truncate(first_line(&strip_html(&text)), MAX_MESSAGE_CHARS),
            ..ServerMessage::default()
        };
    };
    let mut out = ServerMessage::default();
    // The supervisor's own API: {"error": {"code", "message", "field"?}}.
    match obj.get("error") {
        Some(Value::Object(inner)) => {
            let text = |k: &str| {
                inner
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let (code, message, field) = (text("code"), text("message"), text("field"));
            out.message = truncate(
                if message.is_empty() { &code } else { &message },
                MAX_MESSAGE_CHARS,
            );
            if !field.is_empty() {
                out.details.push(ErrorDetail {
                    path: field,
                    errors: vec![message],
                });
            }
            return out;
        }
        Some(Value::String(s)) if obj.get("message").is_none() => {
            out.message = truncate(first_line(s), MAX_MESSAGE_CHARS);
            return out;
        }
        _ => {}
    }
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .map(first_line)
        .unwrap_or("");
    let status = obj.get("status").and_then(Value::as_str).unwrap_or("");
    out.message = if message.is_empty() {
        status.to_owned()
    } else {
        message.to_owned()
    };
    if out.message.is_empty() {
        out.message = Value::Object(obj.clone()).to_string();
    }
    out.message = truncate(&out.message, MAX_MESSAGE_CHARS);

    match obj.get("details") {
        Some(Value::Array(items)) => out.details.extend(items.iter().map(detail_from_value)),
        Some(Value::String(s)) if !s.is_empty() => {
            out.details.push(ErrorDetail {
                path: String::new(),
                errors: vec![s.clone()],
            });
        }
        Some(other @ Value::Object(_)) => out.details.push(detail_from_value(other)),
        _ => {}
    }
    if let Some(Value::Array(items)) = obj.get("errors") {
        out.details.extend(items.iter().map(detail_from_value));
    }
    if let Some(Value::Array(items)) = obj.get("deployments") {
        out.deployments = items
            .iter()
            .filter_map(|d| match d {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned),
                _ => None,
            })
            .collect();
    }
    out
}

fn detail_from_value(v: &Value) -> ErrorDetail {
    match v {
        Value::Object(o) => {
            let path = o
                .get("path")
                .or_else(|| o.get("attribute"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let mut errors = Vec::new();
            for key in ["errors", "error", "message"] {
                match o.get(key) {
                    Some(Value::Array(list)) => errors.extend(list.iter().map(value_text)),
                    Some(Value::String(s)) => errors.push(s.clone()),
                    _ => {}
                }
            }
            if errors.is_empty() {
                errors.push(v.to_string());
            }
            ErrorDetail { path, errors }
        }
        other => ErrorDetail {
            path: String::new(),
            errors: vec![value_text(other)],
        },
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Crude tag stripping so a Jetty HTML error page reads as text.
fn strip_html(text: &str) -> String {
    if !text.trim_start().starts_with('<') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push('\n');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marathon_validation_body() {
        let m = parse_error_body(
            br#"{"message":"Object is not valid","details":[{"path":"/upgradeStrategy/minimumHealthCapacity","errors":["is greater than 1"]}]}"#,
        );
        assert_eq!(m.message, "Object is not valid");
        assert_eq!(m.details.len(), 1);
        assert_eq!(m.details[0].path, "/upgradeStrategy/minimumHealthCapacity");
        assert_eq!(m.details[0].errors, vec!["is greater than 1".to_owned()]);
    }

    #[test]
    fn marathon_locked_body() {
        let m = parse_error_body(
            br#"{"message":"App is locked by one or more deployments.","deployments":[{"id":"97c1"},{"id":"aa"}]}"#,
        );
        assert_eq!(m.deployments, vec!["97c1".to_owned(), "aa".to_owned()]);
    }

    #[test]
    fn malformed_json_details_string_and_legacy_errors() {
        let m =
            parse_error_body(br#"{"message":"Invalid JSON","details":"Unexpected end-of-input"}"#);
        assert_eq!(
            m.details[0].errors,
            vec!["Unexpected end-of-input".to_owned()]
        );
        let m = parse_error_body(br#"{"errors":[{"attribute":"id","error":"must not be empty"}]}"#);
        assert_eq!(m.details[0].path, "id");
        assert_eq!(m.details[0].errors, vec!["must not be empty".to_owned()]);
    }

    #[test]
    fn chronos_stack_trace_keeps_first_line() {
        let body = serde_json::json!({
            "status": "Bad Request",
            "message": "java.lang.IllegalArgumentException: requirement failed: Job 'x' not found\n\tat scala.Predef$.require(Predef.scala:224)\n"
        })
        .to_string();
        let m = parse_error_body(body.as_bytes());
        assert_eq!(
            m.message,
            "java.lang.IllegalArgumentException: requirement failed: Job 'x' not found"
        );
    }

    #[test]
    fn empty_and_html_bodies() {
        assert_eq!(parse_error_body(b"").message, "");
        let m =
            parse_error_body(b"<html><head><title>Error 401 Unauthorized</title></head></html>");
        assert_eq!(m.message, "Error 401 Unauthorized");
    }

    #[test]
    fn supervisor_error_body() {
        let m = parse_error_body(
            br#"{"error":{"code":"invalid_field","message":"must be positive","field":"qos.duration"}}"#,
        );
        assert_eq!(m.message, "must be positive");
        assert_eq!(
            m.details,
            vec![ErrorDetail {
                path: "qos.duration".into(),
                errors: vec!["must be positive".into()]
            }]
        );
        let m = parse_error_body(br#"{"error":{"code":"not_found","message":""}}"#);
        assert_eq!(m.message, "not_found");
        assert_eq!(parse_error_body(br#"{"error":"boom"}"#).message, "boom");
    }

    #[test]
    fn truncate_is_char_safe() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn display_names_request_and_details() {
        let e = FrameworkError::Invalid {
            method: "POST".into(),
            url: "http://m/v2/apps".into(),
            status: 422,
            message: "Object is not valid".into(),
            details: vec![ErrorDetail {
                path: "/id".into(),
                errors: vec!["bad".into()],
            }],
        };
        assert_eq!(
            e.to_string(),
            "POST http://m/v2/apps: rejected as invalid (HTTP 422): Object is not valid (/id: bad)"
        );
        assert_eq!(e.status(), Some(422));
        assert!(!e.is_transient());
    }
}
