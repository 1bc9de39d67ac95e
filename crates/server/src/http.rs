//! The HTTP surface: the WebSocket endpoint and health for clients, and (with `web_dir`) the web
//! client's files behind them (see `web.rs`); metrics (and health) on the operator's separate
//! admin listener, never on the clients' one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use crate::service::Service;

#[derive(Clone)]
pub struct AppState {
    pub svc: Arc<Service>,
    pub shutdown: watch::Receiver<bool>,
}

/// The clients' listener (`listen`). `web`, when configured, answers every path the API
/// routes do not (GET `/` is the web client's `index.html`).
pub fn router(state: AppState, web: Option<Router>) -> Router {
    let api = Router::new()
        .route("/v1/websocket", get(websocket))
        .route("/health", get(health))
        .with_state(state);
    match web {
        Some(web) => api.fallback_service(web),
        None => api,
    }
}

/// The operator's listener (`admin_listen`): how busy the server is, and when, is not for
/// clients to read.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(state)
}

/// GET /v1/websocket: upgrade to a Sirr session (see `session.rs`). Refused with 503 +
/// Retry-After when the server, or the client's address, is at its connection limit.
async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let svc = state.svc;
    if svc.metrics.connections.get() as usize >= svc.config.delivery.max_connections {
        svc.metrics.rejected_overload.inc();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "server is at its connection limit; retry later\n",
        )
            .into_response();
    }
    // Held until the session ends: one address cannot take every connection slot.
    let Some(slot) = svc.limits.connections.open(peer.ip()) else {
        svc.metrics.rejected_rate_limit.inc();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "too many connections from this address; retry later\n",
        )
            .into_response();
    };
    let limit = svc.config.delivery.max_payload + 64 * 1024;
    let shutdown = state.shutdown;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(4 * 1024)
        // Frames collect up to this size before a write; the session flushes after each burst.
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| async move {
            crate::session::run(socket, svc, peer.ip(), shutdown).await;
            drop(slot);
        })
}

/// GET /health: 200 while the server accepts work.
async fn health(State(state): State<AppState>) -> Response {
    if *state.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            "{{\"status\":\"ok\",\"version\":\"{}\"}}\n",
            env!("CARGO_PKG_VERSION")
        ),
    )
        .into_response()
}

/// GET /metrics: Prometheus text format.
async fn metrics(State(state): State<AppState>) -> Response {
    let m = &state.svc.metrics;
    m.store_backlog.set(state.svc.store_backlog() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}
