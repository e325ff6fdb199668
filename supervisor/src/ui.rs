//! `GET /ui`: the supervisor's own live page — one HTML document with its CSS and JavaScript
//! embedded in the binary (no build step, no external resources). It polls one page of
//! `/api/v1/jobs` (100 jobs, newest first, filtered by state and framework), `/api/v1/nodes` and,
//! for the selected job (listed on that page or not), `/api/v1/jobs/{uuid}?reports=0` (its
//! iteration reports are not shown, and a job may have a million) and its `/history`
//! every 2 s; with an admin token configured the page asks for it and keeps it in
//! `sessionStorage`. Every string is set as text, with control, zero-width and bidi-override
//! characters shown as their code points (`⟨U+202E⟩`): a client's host name cannot hide or
//! reverse what an operator reads.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};

const HTML: &str = include_str!("../assets/ui.html");
const CSS: &str = include_str!("../assets/ui.css");
const JS: &str = include_str!("../assets/ui.js");

/// Only this origin is contacted; inline style and script are the page's own.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

static PAGE: LazyLock<String> =
    LazyLock::new(|| HTML.replacen("/*CSS*/", CSS, 1).replacen("/*JS*/", JS, 1));

/// The operator page (`GET /ui`): one self-contained HTML document.
pub(crate) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_embedded_and_self_contained() {
        assert!(!PAGE.contains("/*CSS*/") && !PAGE.contains("/*JS*/"));
        assert!(PAGE.contains("POLL_MS = 2000") && PAGE.contains(".class.ON_PLAN"));
        for external in [
            "src=\"http",
            "href=\"http",
            "url(http",
            "@import",
            "src=\"//",
        ] {
            assert!(!PAGE.contains(external), "{external}");
        }
    }
}
