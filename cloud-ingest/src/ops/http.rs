//! The HTTP listener: `/healthz`, `/metrics`, and the desk's API (`/api/v1`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::watch;

use crate::ops::metrics::Metrics;
use crate::score::ModelSlot;
use crate::store::Store;

/// What the endpoints read.
#[derive(Clone)]
pub struct Health {
    /// Whether the MQTT session is up.
    pub mqtt: watch::Receiver<bool>,
    /// The store.
    pub store: Store,
    /// The model in force.
    pub model: Arc<ModelSlot>,
    /// What a challenger must show before it is promoted.
    pub gate: Arc<crate::registry::gate::GateConfig>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The service clock.
    pub clock: Arc<dyn protocol::clock::Clock>,
    /// How the desk issues customers' links.
    pub links: crate::desk::api::LinkSettings,
    /// The recycling desk's rules.
    pub tradein: Arc<crate::tradein::Rules>,
    /// The cohort watch, for runs on demand.
    pub watch: Arc<crate::cohorts::watcher::Watcher>,
    /// The after-sales policy.
    pub policy: Arc<crate::policy::PolicyConfig>,
}

/// The router.
pub fn router(health: Health) -> Router {
    let state = crate::desk::api::DeskState {
        store: health.store.clone(),
        clock: health.clock.clone(),
        links: health.links.clone(),
        tradein_rules: health.tradein.clone(),
        watch: health.watch.clone(),
        metrics: health.metrics.clone(),
        policy: health.policy.clone(),
        model: health.model.clone(),
        gate: health.gate.clone(),
    };
    let desk = crate::desk::router(state);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(health)
        .merge(desk)
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "no such page: try /desk, /healthz, /metrics or /api/v1 (docs/desk.md)\n",
            )
        })
}

async fn healthz(State(h): State<Health>) -> impl IntoResponse {
    let mqtt = *h.mqtt.borrow();
    let store = h.store.ping().await;
    // Reachable is not enough: a full disk answers queries but refuses writes.
    let write_error = h.metrics.store_error();
    let status = if mqtt && store && write_error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ok" } else { "degraded" },
        "mqtt_connected": mqtt,
        "store_reachable": store,
        "store_writable": write_error.is_none(),
        "store_error": write_error,
        "model_version": h.model.current().version,
    });
    (status, Json(body))
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        h.metrics.render(),
    )
}

/// Binds and serves until `stop`; the bound address is sent once listening.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    mut stop: watch::Receiver<bool>,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let _ = bound.send(listener.local_addr()?);
    axum::serve(listener, router(health))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}
