//! One WebSocket session with a server: request/response matching and the stream of pushes.
//!
//! The socket comes from the platform's [`Connector`](crate::platform::Connector), so this code
//! is the same natively and in the browser. A task started with the platform's
//! [`Spawner`](crate::platform::Spawner) owns the read half. Responses are routed to the waiting
//! request by id; pushes and notices go to an event channel the caller drains with
//! [`Connection::next_event`]. Timeouts are the platform's [`Clock`](crate::platform::Clock).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::AbortHandle;
use sirr_proto::{
    ClientFrame, Envelope, ErrorBody, Request, Response, ServerFrame, decode_server_frame, encode,
};
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};

use crate::error::{ClientError, Result};
use crate::platform::{FrameSink, Platform};

/// Largest frame this client accepts from a server.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type Waiters = Arc<Mutex<HashMap<u32, oneshot::Sender<Result<Response, ErrorBody>>>>>;

/// Something the server pushed.
#[derive(Debug)]
pub enum Event {
    Message(Envelope),
    /// Everything queued at connect time has been pushed.
    QueueEmpty,
    /// The server ended the session, saying why.
    Closing(ErrorBody),
    /// The connection is gone.
    Disconnected(String),
}

pub struct Connection {
    platform: Platform,
    sink: AsyncMutex<Box<dyn FrameSink>>,
    next_id: AtomicU32,
    waiters: Waiters,
    events: mpsc::UnboundedReceiver<Event>,
    /// Stops the reader task (spawned with the platform's spawner) on [`Connection::close`].
    reader: AbortHandle,
}

/// The WebSocket URL for a server base URL (`http(s)://host:port` or `ws(s)://...`).
pub fn websocket_url(server: &str) -> Result<String> {
    let s = server.trim_end_matches('/');
    let rest = if let Some(r) = s.strip_prefix("http://") {
        format!("ws://{r}")
    } else if let Some(r) = s.strip_prefix("https://") {
        format!("wss://{r}")
    } else if s.starts_with("ws://") || s.starts_with("wss://") {
        s.to_owned()
    } else {
        return Err(ClientError::Invalid(format!(
            "server URL must start with http://, https://, ws:// or wss://, got {server:?}"
        )));
    };
    Ok(if rest.ends_with("/v1/websocket") {
        rest
    } else {
        format!("{rest}/v1/websocket")
    })
}

impl Connection {
    /// Connect with the native platform ([`Platform::native`]).
    #[cfg(feature = "native")]
    pub async fn connect(server: &str, extra_ca_pem: Option<&[u8]>) -> Result<Connection> {
        Connection::open(&Platform::native(), server, extra_ca_pem).await
    }

    /// Connect to `server` through `platform`'s connector, and start reading in a task of its
    /// spawner.
    pub async fn open(platform: &Platform, server: &str, extra_ca_pem: Option<&[u8]>) -> Result<Connection> {
        let url = websocket_url(server)?;
        let (sink, mut stream) = platform
            .timeout(
                REQUEST_TIMEOUT.as_millis() as u64,
                platform.connector.connect(&url, extra_ca_pem),
            )
            .await
            .ok_or_else(|| ClientError::Connection(format!("timed out connecting to {url}")))?
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        let waiters: Waiters = Arc::default();
        let (tx, events) = mpsc::unbounded_channel();
        let reader = {
            let waiters = waiters.clone();
            async move {
                let why = loop {
                    let bytes = match stream.next().await {
                        Some(Ok(b)) => b,
                        None => break "server closed the connection".to_owned(),
                        Some(Err(e)) => break e.to_string(),
                    };
                    match decode_server_frame(&bytes, MAX_FRAME) {
                        Ok(ServerFrame::Response { id, result }) => {
                            let waiter = waiters.lock().ok().and_then(|mut w| w.remove(&id));
                            if let Some(w) = waiter {
                                let _ = w.send(result);
                            }
                        }
                        Ok(ServerFrame::Push(env)) => {
                            let _ = tx.send(Event::Message(env));
                        }
                        Ok(ServerFrame::QueueEmpty) => {
                            let _ = tx.send(Event::QueueEmpty);
                        }
                        Ok(ServerFrame::Closing(body)) => {
                            let _ = tx.send(Event::Closing(body));
                        }
                        Err(e) => break format!("undecodable frame from server: {e}"),
                    }
                };
                // Fail everything still waiting.
                if let Ok(mut w) = waiters.lock() {
                    w.clear();
                }
                let _ = tx.send(Event::Disconnected(why));
            }
        };
        let (reader, handle) = futures_util::future::abortable(reader);
        platform.spawner.spawn(Box::pin(async move {
            let _ = reader.await;
        }));
        Ok(Connection {
            platform: platform.clone(),
            sink: AsyncMutex::new(sink),
            next_id: AtomicU32::new(1),
            waiters,
            events,
            reader: handle,
        })
    }

    async fn send_frame(&self, frame: &ClientFrame) -> Result<()> {
        self.sink
            .lock()
            .await
            .send(encode(frame))
            .await
            .map_err(|e| ClientError::Connection(e.to_string()))
    }

    /// Send a request and wait for its answer. Server refusals come back as
    /// [`ClientError::Server`].
    pub async fn request(&self, body: Request) -> Result<Response> {
        self.request_within(body, REQUEST_TIMEOUT).await
    }

    /// [`Self::request`], waiting up to `timeout` for the answer (for requests the server
    /// holds by design, such as `AwaitLink`).
    pub async fn request_within(&self, body: Request, timeout: Duration) -> Result<Response> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .map_err(|_| ClientError::Connection("connection state poisoned".into()))?
            .insert(id, tx);
        self.send_frame(&ClientFrame::Request { id, body }).await?;
        match self.platform.timeout(timeout.as_millis() as u64, rx).await {
            None => Err(ClientError::Connection(
                "the server did not answer in time".into(),
            )),
            Some(Err(_)) => Err(ClientError::Connection(
                "connection lost before the answer".into(),
            )),
            Some(Ok(Ok(r))) => Ok(r),
            Some(Ok(Err(e))) => Err(ClientError::Server(e)),
        }
    }

    /// Tell the server these pushes are stored and may be deleted.
    pub async fn ack(&self, seqs: Vec<u64>) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.send_frame(&ClientFrame::Ack { seqs }).await
    }

    /// The next push or notice; `None` after `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        self.platform
            .timeout(timeout.as_millis() as u64, self.events.recv())
            .await
            .flatten()
    }

    /// Close politely.
    pub async fn close(self) {
        self.sink.lock().await.close().await;
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        assert_eq!(
            websocket_url("http://127.0.0.1:7700").unwrap(),
            "ws://127.0.0.1:7700/v1/websocket"
        );
        assert_eq!(
            websocket_url("https://sirr.example/").unwrap(),
            "wss://sirr.example/v1/websocket"
        );
        assert_eq!(
            websocket_url("ws://h/v1/websocket").unwrap(),
            "ws://h/v1/websocket"
        );
        assert!(websocket_url("127.0.0.1:7700").is_err());
    }
}
