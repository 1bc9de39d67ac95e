//! `sirrd`, the Sirr server, as a library: [`run`] composes storage, the hub, rate limits and the
//! WebSocket gateway from a [`Config`]. The binary (`main.rs`) only parses flags and calls it.
//!
//! Module map:
//! - `config`: the one configuration struct and its layered loading;
//! - `http`: routes (`/v1/websocket` and `/health` for clients; `/metrics` and `/health` on the
//!   separate admin listener); `web`: the web client's files (`web_dir`) behind the clients'
//!   routes, with their security headers;
//! - `session`: one WebSocket connection (handshake, then a device session);
//! - `service`: what requests do, independent of transport; `keydir`: the key directory and
//!   the order of conversation commits; `link`: linking new devices; `approval`: which
//!   devices the account's signed list approved; `reglock`: the registration lock and what
//!   registering a number anew does;
//! - `hub`: live sessions on this node, fed by storage commits;
//! - `sealed_tokens`: anonymous tokens that pay for sealed sends (issued by standing);
//! - `limits`: in-memory token buckets; `keys`: the server key and keyed hashes;
//! - `verify`: verification-code senders (log for dev, webhook for an SMS gateway);
//! - `metrics`: Prometheus counters;
//! - `admin`: operator commands, each recorded in the disclosure ledger;
//! - `privacy`: the privacy manifest (`privacy.toml`), its schema check and its rendering.

pub mod abuse;
pub mod admin;
pub mod approval;
pub mod config;
mod http;
pub mod hub;
pub mod keydir;
pub mod keys;
pub mod limits;
pub mod link;
pub mod metrics;
pub mod privacy;
pub mod reglock;
pub mod report;
pub mod sealed_tokens;
pub mod service;
mod session;
pub mod verify;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sirr_store::Store;
use sirr_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use tokio::sync::watch;

pub use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("storage: {0}")]
    Store(#[from] sirr_store::StoreError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("verification sender: {0}")]
    Sender(#[from] verify::SendError),
    #[error(transparent)]
    Web(#[from] web::WebError),
}

/// Install the process-wide rustls crypto provider (ring). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Run the server until `shutdown` resolves, then drain: sessions are told to close, in-flight
/// requests finish, storage flushes its last batch, and this returns.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    install_crypto_provider();
    // Checked before anything else is opened: a wrong path should not leave a fresh database.
    let web = config.web_dir.as_deref().map(web::routes).transpose()?;
    let data = config.data.clone();
    let data_err = |source| ServerError::DataDir {
        path: data.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&data).map_err(data_err)?;
    let key = keys::ServerKey::load_or_create(&data).map_err(data_err)?;

    let hub = Arc::new(hub::Hub::default());
    let options = SqliteOptions {
        durability: match config.storage.durability {
            config::Durability::Full => Durability::Full,
            config::Durability::Normal => Durability::Normal,
        },
        write_queue: config.storage.write_queue,
        max_batch: config.storage.max_batch,
        ..SqliteOptions::default()
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&data.join("sirr.db"), options, hub.clone())?);

    let sender: Arc<dyn verify::VerificationSender> = match &config.verification.webhook_url {
        Some(url) => Arc::new(verify::WebhookSender::new(url.clone(), client_tls())?),
        None => Arc::new(verify::LogSender),
    };
    if config.dev {
        for _ in 0..3 {
            tracing::warn!(
                "DEVELOPMENT MODE: the code {} is accepted for EVERY phone number. Never expose this server to real users.",
                service::DEV_CODE
            );
        }
    }

    let svc = Arc::new(service::Service::new(
        config.clone(),
        store.clone(),
        hub,
        key,
        sender,
    ));
    // Bans and other standings outlive restarts: they are stored with their reasons.
    // A decision that cannot be read stops the start: skipping it could lift a ban.
    svc.follow_abuse_reviews().await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = http::AppState {
        svc: svc.clone(),
        shutdown: stop_rx.clone(),
    };
    if let Some(dir) = &config.web_dir {
        tracing::info!(dir = %dir.display(), "serving the web client at /");
    }
    let app = http::router(state.clone(), web);
    let admin_app = http::admin_router(state);

    let housekeeping = {
        let svc = svc.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(svc.config.delivery.housekeeping_secs));
            loop {
                tokio::select! {
                    _ = tick.tick() => svc.housekeeping().await,
                    _ = stop.changed() => break,
                }
            }
        })
    };

    // Messages are small and latency matters: no Nagle delay on accepted sockets (a push
    // otherwise waits for the client's ack of the previous segment).
    use axum_server::accept::NoDelayAcceptor;
    let handle = axum_server::Handle::new();
    let listener = std::net::TcpListener::bind(config.listen).map_err(|source| ServerError::Listen {
        addr: config.listen,
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServerError::Listen {
        addr: config.listen,
        source,
    })?;
    // The operator's listener: metrics only, plain HTTP, bound before we announce we listen.
    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: config.admin_listen,
            source,
        })?;
    let admin_bound = admin_listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.admin_listen,
            source,
        })?;
    let admin = {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let served = axum::serve(admin_listener, admin_app)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "admin listener stopped with an error");
            }
        })
    };
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = {
        let handle = handle.clone();
        match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(|e| ServerError::Tls(e.to_string()))?;
                tokio::spawn(async move {
                    axum_server::from_tcp_rustls(listener, tls)
                        .map_err(|e| e.to_string())?
                        .map(|tls| tls.acceptor(NoDelayAcceptor::new()))
                        .handle(handle)
                        .serve(service)
                        .await
                        .map_err(|e| e.to_string())
                })
            }
            _ => tokio::spawn(async move {
                axum_server::from_tcp(listener)
                    .map_err(|e| e.to_string())?
                    .acceptor(NoDelayAcceptor::new())
                    .handle(handle)
                    .serve(service)
                    .await
                    .map_err(|e| e.to_string())
            }),
        }
    };
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(address = %admin_bound, "sirrd admin (metrics) listening on http://{admin_bound}");
    tracing::info!(address = %bound, "sirrd listening on {scheme}://{bound}");

    shutdown.await;
    tracing::info!("shutting down: closing sessions and flushing storage");
    let _ = stop_tx.send(true);
    handle.graceful_shutdown(Some(Duration::from_secs(10)));
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "server stopped with an error"),
        Err(e) => tracing::error!(error = %e, "server task failed"),
    }
    // Upgraded WebSocket sessions are no longer the HTTP server's connections, so its graceful
    // shutdown does not wait for them: wait here until each has said why it ends and lingered
    // for the client's Close (bounded), or ending the runtime would cut them off mid-close.
    let deadline = tokio::time::Instant::now() + session::SHUTDOWN_GRACE;
    while svc.metrics.connections.get() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = housekeeping.await;
    let _ = admin.await;
    store.close().await?;
    tracing::info!("sirrd stopped cleanly");
    Ok(())
}

/// TLS settings for outgoing HTTPS (the SMS webhook): ring, Mozilla's roots.
fn client_tls() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
