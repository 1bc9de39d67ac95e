//! One WebSocket session with a server: request/response matching and the stream of pushes.
//!
//! A background task owns the socket's read half. Responses are routed to the waiting request by
//! id; pushes and notices go to an event channel the caller drains with [`Connection::next_event`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use sirr_proto::{
    ClientFrame, Envelope, ErrorBody, Request, Response, ServerFrame, decode_server_frame, encode,
};
use tokio::net::TcpStream;
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::{ClientError, Result};

/// Largest frame this client accepts from a server.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
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
    sink: AsyncMutex<SplitSink<Ws, Message>>,
    next_id: AtomicU32,
    waiters: Waiters,
    events: mpsc::UnboundedReceiver<Event>,
    reader: tokio::task::JoinHandle<()>,
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

/// TLS settings: Mozilla's roots, plus an extra CA (PEM) if the server uses a private one.
pub fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_ca_pem {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ClientError::Invalid(format!("CA certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::Invalid(format!("CA certificate: {e}")))?;
        }
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl Connection {
    pub async fn connect(server: &str, extra_ca_pem: Option<&[u8]>) -> Result<Connection> {
        let url = websocket_url(server)?;
        let connector = if url.starts_with("wss://") {
            Some(Connector::Rustls(Arc::new(tls_config(extra_ca_pem)?)))
        } else {
            None
        };
        // A small read buffer: tungstenite zero-fills a buffer-sized chunk on every read.
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        let (ws, _) = tokio::time::timeout(
            REQUEST_TIMEOUT,
            tokio_tungstenite::connect_async_tls_with_config(&url, Some(config), true, connector),
        )
        .await
        .map_err(|_| ClientError::Connection(format!("timed out connecting to {url}")))?
        .map_err(|e| ClientError::Connection(format!("cannot connect to {url}: {e}")))?;
        let (sink, mut stream) = ws.split();
        let waiters: Waiters = Arc::default();
        let (tx, events) = mpsc::unbounded_channel();
        let reader = {
            let waiters = waiters.clone();
            tokio::spawn(async move {
                let why = loop {
                    let bytes = match stream.next().await {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Close(_))) | None => {
                            break "server closed the connection".to_owned();
                        }
                        Some(Ok(_)) => continue,
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
            })
        };
        Ok(Connection {
            sink: AsyncMutex::new(sink),
            next_id: AtomicU32::new(1),
            waiters,
            events,
            reader,
        })
    }

    async fn send_frame(&self, frame: &ClientFrame) -> Result<()> {
        self.sink
            .lock()
            .await
            .send(Message::Binary(encode(frame).into()))
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
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(ClientError::Connection(
                "the server did not answer in time".into(),
            )),
            Ok(Err(_)) => Err(ClientError::Connection(
                "connection lost before the answer".into(),
            )),
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(e))) => Err(ClientError::Server(e)),
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
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Close politely.
    pub async fn close(self) {
        let _ = self.sink.lock().await.close().await;
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
