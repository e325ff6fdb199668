//! Marathon emulator (filled in below).

use std::sync::Arc;

use axum::Router;

use crate::cluster::Cluster;

/// The Marathon emulator.
pub(crate) struct Marathon {
    #[allow(dead_code)]
    cluster: Arc<Cluster>,
}

impl Marathon {
    pub(crate) fn start(cluster: Arc<Cluster>, _base: &str) -> Arc<Self> {
        Arc::new(Self { cluster })
    }
    pub(crate) fn stop(&self) {}
}

pub(crate) fn router(_m: Arc<Marathon>) -> Router {
    Router::new()
}
