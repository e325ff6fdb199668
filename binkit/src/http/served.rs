//! The service as a connection serves it: every request's body due in full within a deadline of
//! its head, and the answers counted (for `explain`).

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// `inner` served on one connection: each request's body given a deadline, `body_timeout` after
/// its head was read; each answer made counted in `answers`.
pub(super) struct Served<S> {
    inner: S,
    answers: Arc<AtomicU64>,
    body_timeout: Duration,
}

impl<S> Served<S> {
    pub(super) fn new(inner: S, answers: Arc<AtomicU64>, body_timeout: Duration) -> Self {
        Self {
            inner,
            answers,
            body_timeout,
        }
    }
}

impl<S, B> hyper::service::Service<hyper::Request<B>> for Served<S>
where
    S: hyper::service::Service<hyper::Request<Due<B>>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, req: hyper::Request<B>) -> Self::Future {
        let after = self.body_timeout;
        let answer = self.inner.call(req.map(|body| Due {
            body,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + after)),
            after,
        }));
        let answers = Arc::clone(&self.answers);
        Box::pin(async move {
            let r = answer.await;
            if r.is_ok() {
                answers.fetch_add(1, Ordering::Relaxed);
            }
            r
        })
    }
}

/// A request body that fails with [`BodyTimedOut`] when it has not ended by its deadline: a
/// client that sends its body a byte at a time, or a chunked body without its end, holds its
/// connection (and what the handler buffered) no longer than that.
pub struct Due<B> {
    body: B,
    deadline: Pin<Box<Sleep>>,
    after: Duration,
}

impl<B> fmt::Debug for Due<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Due").field("after", &self.after).finish()
    }
}

/// A request body did not arrive in full in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimedOut {
    /// How long after its head the body was due.
    pub after: Duration,
}

impl fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body did not arrive in full within {:.1} s of the request head",
            self.after.as_secs_f64()
        )
    }
}

impl Error for BodyTimedOut {}

impl<B> Body for Due<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut { after: this.after })))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
