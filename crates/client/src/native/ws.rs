//! WebSockets over tokio-tungstenite, with rustls: Mozilla's roots plus an optional private CA.

use std::sync::Arc;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::connection::MAX_FRAME;
use crate::error::{ClientError, Result};
use crate::platform::{Connector, FrameSink, FrameStream, TransportError};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// Connects with tokio-tungstenite (TCP, then rustls for `wss://`).
pub struct WsConnector;

#[async_trait::async_trait]
impl Connector for WsConnector {
    async fn connect(
        &self,
        url: &str,
        extra_ca_pem: Option<&[u8]>,
    ) -> Result<(Box<dyn FrameSink>, Box<dyn FrameStream>), TransportError> {
        let failed = |why: String| TransportError::Connect {
            url: url.to_owned(),
            why,
        };
        let connector = if url.starts_with("wss://") {
            let tls = tls_config(extra_ca_pem).map_err(|e| failed(e.to_string()))?;
            Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls)))
        } else {
            None
        };
        // A small read buffer: tungstenite zero-fills a buffer-sized chunk on every read.
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, connector)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let (sink, stream) = ws.split();
        Ok((Box::new(WsSink(sink)), Box::new(WsStream(stream))))
    }
}

struct WsSink(SplitSink<Ws, Message>);

#[async_trait::async_trait]
impl FrameSink for WsSink {
    async fn send(&mut self, frame: Vec<u8>) -> Result<(), TransportError> {
        self.0
            .send(Message::Binary(frame.into()))
            .await
            .map_err(|e| TransportError::Broken(e.to_string()))
    }

    async fn close(&mut self) {
        let _ = self.0.close().await;
    }
}

struct WsStream(SplitStream<Ws>);

#[async_trait::async_trait]
impl FrameStream for WsStream {
    async fn next(&mut self) -> Option<Result<Vec<u8>, TransportError>> {
        loop {
            return match self.0.next().await {
                Some(Ok(Message::Binary(b))) => Some(Ok(b.to_vec())),
                Some(Ok(Message::Close(_))) | None => None,
                Some(Ok(_)) => continue,
                Some(Err(e)) => Some(Err(TransportError::Broken(e.to_string()))),
            };
        }
    }
}
