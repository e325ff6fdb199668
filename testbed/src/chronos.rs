//! Chronos emulator (filled in below).

use std::sync::Arc;

use axum::Router;

use crate::cluster::Cluster;

/// The Chronos emulator.
pub(crate) struct Chronos {
    #[allow(dead_code)]
    cluster: Arc<Cluster>,
}

impl Chronos {
    pub(crate) fn start(cluster: Arc<Cluster>) -> Arc<Self> {
        Arc::new(Self { cluster })
    }
    pub(crate) fn stop(&self) {}
}

pub(crate) fn router(_m: Arc<Chronos>) -> Router {
    Router::new()
}
