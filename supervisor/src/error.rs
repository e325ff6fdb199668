//! The one place that decides HTTP statuses: [`ApiError`] answers
//! `{"error": {"code", "message", "field"?}}` and never leaks internal details (those are logged).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use qos_core::wire::{ErrorBody, ErrorDetail};

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine code (`invalid_field`, `not_found`, …).
    pub code: &'static str,
    /// Human message saying what to fix.
    pub message: String,
    /// The offending field, dotted.
    pub field: Option<String>,
}

impl ApiError {
    /// 422 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// 400: the body is not JSON at all.
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            message: message.into(),
            field: None,
        }
    }

    /// 400: a path parameter that cannot be decoded (bad percent-encoding, not UTF-8).
    pub fn bad_path(field: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_path",
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// 404 Not Found, with `message` as its body's error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            field: None,
        }
    }

    /// 409 naming `field`.
    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// 401 Unauthorized: a missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "a valid bearer token is required".into(),
            field: None,
        }
    }

    /// 503: the service cannot take this now (overloaded, store failing, shutting down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            field: None,
        }
    }

    /// 500; the cause is logged here and not sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error (logged on the supervisor)".into(),
            field: None,
        }
    }

    /// Any status with a code and message.
    pub fn other(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// The wire body (message and field cut to a bounded length: they may quote the input).
    #[must_use]
    pub fn body(&self) -> ErrorBody {
        let cut = |s: &str| truncate(s, MAX_MESSAGE).into_owned();
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: cut(&self.message),
                field: self.field.as_deref().map(cut),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Turns a `serde_path_to_error` failure into a 422 naming the field (or a 400 when the body is
/// not JSON at all).
pub(crate) fn from_json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = e.inner();
    let path = e.path().to_string();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::bad_json(format!("the body is not valid JSON: {inner}"));
    }
    let message = strip_position(&inner.to_string());
    // Missing fields are reported at the parent path with the name in the message.
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("");
        let field = if path == "." || path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        return ApiError::invalid(field.clone(), format!("{field} is missing"));
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let field = if path == "." || path.is_empty() {
            name.to_owned()
        } else if path == name || path.ends_with(&format!(".{name}")) {
            path
        } else {
            format!("{path}.{name}")
        };
        return ApiError::invalid(field, message);
    }
    let field = if path == "." || path.is_empty() {
        "body".to_owned()
    } else {
        path
    };
    // A nested validator may name a deeper field itself (`qos.deadline: …`).
    if let Some((inner, _)) = message.split_once(": ") {
        if inner.starts_with(&format!("{field}.")) && !inner.contains(' ') {
            return ApiError::invalid(inner.to_owned(), message.clone());
        }
    }
    ApiError::invalid(field.clone(), format!("{field}: {message}"))
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Longest message of an error answer, bytes (messages quote what they refuse).
const MAX_MESSAGE: usize = 1024;

pub(crate) use qos_core::wire::truncate;

#[cfg(test)]
mod tests {
    use super::*;
    use qos_core::wire::UpdateTask;

    fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, ApiError> {
        let de = &mut serde_json::Deserializer::from_str(s);
        serde_path_to_error::deserialize(de).map_err(|e| from_json_error(&e))
    }

    #[test]
    fn names_the_field() {
        let e = parse::<UpdateTask>(
            r#"{"name":"x","finished_at":"soon","started_at":1,"hostname":"h","uuid":"u"}"#,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("finished_at"));
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        let e =
            parse::<UpdateTask>(r#"{"name":"x","finished_at":2,"started_at":1,"hostname":"h"}"#)
                .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("uuid"));
        let e = parse::<UpdateTask>("{").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("hello", 10), "hello");
    }
}
