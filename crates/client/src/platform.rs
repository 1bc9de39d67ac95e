//! The client's platform seams: what the shared client code needs from where it runs, so the
//! same code runs natively (tokio, TCP, SQLite) and in the browser (wasm-bindgen futures,
//! WebSocket, IndexedDB) with no copy of client logic.
//!
//! - [`Clock`]: the time, and waiting (`SystemTime::now` panics on wasm32-unknown-unknown);
//! - [`Spawner`]: running a task in the background, and CPU-bound work off the async thread;
//! - [`Connector`]: a binary-frame WebSocket to the server ([`FrameSink`], [`FrameStream`]);
//! - the local store is the fourth seam, [`crate::store::Store`], given to
//!   [`crate::state::State`].
//!
//! On native targets every seam must be `Send + Sync` (tokio's multi-threaded runtime moves
//! tasks between threads); on wasm32 nothing is (JS futures are `!Send`). [`MaybeSend`] and
//! [`MaybeSendSync`] say exactly that, as matrix-rust-sdk's `SendOutsideWasm` does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::{ClientError, Result};

/// `Send` outside wasm32, nothing on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` outside wasm32, nothing on wasm32.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// `Send + Sync` outside wasm32, nothing on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
/// `Send + Sync` outside wasm32, nothing on wasm32.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSendSync for T {}

/// A boxed future, `Send` outside wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A boxed future, `Send` outside wasm32.
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// CPU-bound work handed to [`Spawner::run_blocking`].
#[cfg(not(target_arch = "wasm32"))]
pub type BlockingJob = Box<dyn FnOnce() + Send + 'static>;
/// CPU-bound work handed to [`Spawner::run_blocking`].
#[cfg(target_arch = "wasm32")]
pub type BlockingJob = Box<dyn FnOnce() + 'static>;

/// Wall-clock time and waiting.
pub trait Clock: MaybeSendSync {
    /// Milliseconds since the Unix epoch (0 if the clock is before it).
    fn now_ms(&self) -> u64;
    /// A future that completes after `ms` milliseconds.
    fn sleep(&self, ms: u64) -> BoxFuture<'static, ()>;
}

/// Running work outside the caller's future.
pub trait Spawner: MaybeSendSync {
    /// Run `task` in the background until it completes; nothing waits for it. A task that must
    /// stop early is made abortable by the caller (see [`crate::Connection`]).
    fn spawn(&self, task: BoxFuture<'static, ()>);
    /// Run CPU-bound `job` (a proof-of-work) where it does not stall other tasks — a blocking
    /// thread natively; a platform without threads may run it inline. Completes when `job` has.
    fn run_blocking(&self, job: BlockingJob) -> BoxFuture<'static, ()>;
}

/// Why a transport failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The server could not be reached, or the handshake (TCP, TLS, WebSocket) failed.
    #[error("cannot connect to {url}: {why}")]
    Connect { url: String, why: String },
    /// The connection was established but broke.
    #[error("{0}")]
    Broken(String),
    /// The connector cannot do what was asked (a custom CA in a browser).
    #[error("{0}")]
    Unsupported(String),
}

/// The sending half of a binary WebSocket.
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait FrameSink: MaybeSend {
    /// Send one binary frame; returns when the transport took it.
    async fn send(&mut self, frame: Vec<u8>) -> Result<(), TransportError>;
    /// Close the connection politely (errors are moot: the caller is leaving).
    async fn close(&mut self);
}

/// The receiving half of a binary WebSocket.
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait FrameStream: MaybeSend {
    /// The next binary frame; `None` once the connection closed cleanly. Non-binary frames
    /// (pings, text) are the transport's business and never returned.
    async fn next(&mut self) -> Option<Result<Vec<u8>, TransportError>>;
}

/// Opens WebSocket connections to a server.
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait Connector: MaybeSendSync {
    /// Connect to `url` (`ws://` or `wss://`), trusting `extra_ca_pem` as well as the
    /// platform's roots for `wss://` if given. A connector that cannot add roots (a browser)
    /// must refuse `Some` with [`TransportError::Unsupported`] rather than ignore it.
    async fn connect(
        &self,
        url: &str,
        extra_ca_pem: Option<&[u8]>,
    ) -> Result<(Box<dyn FrameSink>, Box<dyn FrameStream>), TransportError>;
}

/// The seams a [`crate::Client`] runs on. Cloning is shallow (three `Arc`s).
#[derive(Clone)]
pub struct Platform {
    pub clock: Arc<dyn Clock>,
    pub spawner: Arc<dyn Spawner>,
    pub connector: Arc<dyn Connector>,
}

impl Platform {
    /// tokio's clock and executor, and WebSockets over tokio-tungstenite with rustls.
    #[cfg(feature = "native")]
    pub fn native() -> Platform {
        Platform {
            clock: Arc::new(crate::native::TokioClock),
            spawner: Arc::new(crate::native::TokioSpawner),
            connector: Arc::new(crate::native::ws::WsConnector),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// `fut`'s output, or `None` if `ms` milliseconds pass first. A `fut` that is ready at once
    /// wins even with `ms == 0`.
    pub async fn timeout<F: Future>(&self, ms: u64, fut: F) -> Option<F::Output> {
        let fut = std::pin::pin!(fut);
        match futures_util::future::select(fut, self.clock.sleep(ms)).await {
            futures_util::future::Either::Left((v, _)) => Some(v),
            futures_util::future::Either::Right(_) => None,
        }
    }

    /// Run `f` through [`Spawner::run_blocking`] and return its result.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawner
            .run_blocking(Box::new(move || {
                let _ = tx.send(f());
            }))
            .await;
        rx.await
            .map_err(|_| ClientError::State("a background job ended without its result".into()))
    }

    /// Run `f` through [`Spawner::run_blocking`] and return its result.
    #[cfg(target_arch = "wasm32")]
    pub async fn blocking<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawner
            .run_blocking(Box::new(move || {
                let _ = tx.send(f());
            }))
            .await;
        rx.await
            .map_err(|_| ClientError::State("a background job ended without its result".into()))
    }
}
