//! The browser's [`Platform`]: the clock is `Date.now` and `setTimeout`, tasks run on the page's
//! event loop (`spawn_local`; no threads, so CPU-bound work runs inline), and the connector is
//! the browser's `WebSocket`.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Function, Promise, Reflect, Uint8Array};
use sirr_client::Platform;
use sirr_client::platform::{
    BlockingJob, BoxFuture, Clock, Connector, FrameSink, FrameStream, Spawner, TransportError,
};
use tokio::sync::{mpsc, oneshot};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

/// The browser's clock, event loop and WebSocket.
pub fn browser_platform() -> Platform {
    Platform {
        clock: Arc::new(BrowserClock),
        spawner: Arc::new(BrowserSpawner),
        connector: Arc::new(BrowserConnector),
    }
}

/// `Date.now` and `setTimeout`.
pub struct BrowserClock;

impl Clock for BrowserClock {
    fn now_ms(&self) -> u64 {
        let now = js_sys::Date::now();
        if now.is_finite() && now > 0.0 {
            now as u64
        } else {
            0
        }
    }

    fn sleep(&self, ms: u64) -> BoxFuture<'static, ()> {
        // setTimeout takes a signed 32-bit delay; longer waits are cut to ~24.8 days.
        let ms = ms.min(i32::MAX as u64) as i32;
        let promise = Promise::new(&mut |resolve, _| {
            let set_timeout = Reflect::get(&js_sys::global(), &"setTimeout".into())
                .ok()
                .and_then(|f| f.dyn_into::<Function>().ok());
            match set_timeout {
                Some(f) => {
                    let _ = f.call2(&JsValue::NULL, &resolve, &ms.into());
                }
                None => {
                    let _ = resolve.call0(&JsValue::NULL);
                }
            }
        });
        Box::pin(async move {
            let _ = JsFuture::from(promise).await;
        })
    }
}

/// The page's event loop; no threads.
pub struct BrowserSpawner;

impl Spawner for BrowserSpawner {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        wasm_bindgen_futures::spawn_local(task);
    }

    /// Inline: the page has no blocking thread (a worker may come later for proofs of work).
    fn run_blocking(&self, job: BlockingJob) -> BoxFuture<'static, ()> {
        Box::pin(async move { job() })
    }
}

/// The browser's `WebSocket` (binary frames as `ArrayBuffer`s). It cannot trust extra roots.
pub struct BrowserConnector;

/// What a socket's event handlers share with its two halves; the handlers are removed and the
/// socket closed when both halves are dropped.
struct Socket {
    ws: WebSocket,
    _handlers: [Closure<dyn FnMut(JsValue)>; 4],
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onerror(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close_with_code(1000);
    }
}

#[async_trait::async_trait(?Send)]
impl Connector for BrowserConnector {
    async fn connect(
        &self,
        url: &str,
        extra_ca_pem: Option<&[u8]>,
    ) -> Result<(Box<dyn FrameSink>, Box<dyn FrameStream>), TransportError> {
        let connect_error = |why: String| TransportError::Connect {
            url: url.to_owned(),
            why,
        };
        if extra_ca_pem.is_some() {
            return Err(TransportError::Unsupported(
                "a browser trusts only its own roots: a private CA cannot be added".into(),
            ));
        }
        let ws = WebSocket::new(url).map_err(|e| connect_error(crate::js::describe(&e).1))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let (frames_tx, frames) = mpsc::unbounded_channel();
        let (opened_tx, opened) = oneshot::channel::<Result<(), String>>();
        let opened_tx = Rc::new(RefCell::new(Some(opened_tx)));
        let frames_tx = Rc::new(RefCell::new(Some(frames_tx)));
        let on_open = {
            let opened_tx = opened_tx.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_| {
                if let Some(tx) = opened_tx.borrow_mut().take() {
                    let _ = tx.send(Ok(()));
                }
            })
        };
        let on_message = {
            let frames_tx = frames_tx.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
                let Some(e) = e.dyn_ref::<MessageEvent>() else {
                    return;
                };
                // Text frames are not Sirr frames: ignored, as the trait says.
                let data = e.data();
                if let (true, Some(tx)) = (
                    data.is_instance_of::<js_sys::ArrayBuffer>(),
                    frames_tx.borrow().as_ref(),
                ) {
                    let _ = tx.send(Ok(Uint8Array::new(&data).to_vec()));
                }
            })
        };
        // The error event says nothing useful (by design); the close event that follows does.
        let on_error = Closure::<dyn FnMut(JsValue)>::new(|_| {});
        let on_close = {
            let (opened_tx, frames_tx) = (opened_tx.clone(), frames_tx.clone());
            Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
                let (code, reason) = e
                    .dyn_ref::<CloseEvent>()
                    .map(|c| (c.code(), c.reason()))
                    .unwrap_or((1006, String::new()));
                if let Some(tx) = opened_tx.borrow_mut().take() {
                    let _ = tx.send(Err(close_text(code, &reason)));
                    return;
                }
                // Dropping the sender ends the stream: `None` for a clean close, else an error.
                let tx = frames_tx.borrow_mut().take();
                if let (Some(tx), false) = (tx, code == 1000) {
                    let _ = tx.send(Err(TransportError::Broken(close_text(code, &reason))));
                }
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let socket = Rc::new(Socket {
            ws,
            _handlers: [on_open, on_message, on_error, on_close],
        });
        match opened.await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Err(connect_error(why)),
            Err(_) => return Err(connect_error("the socket went away".into())),
        }
        Ok((
            Box::new(WsSink(socket.clone())),
            Box::new(WsStream {
                _socket: socket,
                frames,
            }),
        ))
    }
}

fn close_text(code: u16, reason: &str) -> String {
    match (code, reason.is_empty()) {
        (1006, _) => "the connection failed or broke (close code 1006)".to_owned(),
        (_, true) => format!("closed with code {code}"),
        (_, false) => format!("closed with code {code}: {reason}"),
    }
}

struct WsSink(Rc<Socket>);

#[async_trait::async_trait(?Send)]
impl FrameSink for WsSink {
    /// Hands the frame to the browser, which buffers it (`bufferedAmount`); fails once the
    /// socket is closing or closed.
    async fn send(&mut self, frame: Vec<u8>) -> Result<(), TransportError> {
        if self.0.ws.ready_state() != WebSocket::OPEN {
            return Err(TransportError::Broken("the connection is closed".into()));
        }
        self.0
            .ws
            .send_with_u8_array(&frame)
            .map_err(|e| TransportError::Broken(crate::js::describe(&e).1))
    }

    async fn close(&mut self) {
        let _ = self.0.ws.close_with_code(1000);
    }
}

struct WsStream {
    _socket: Rc<Socket>,
    frames: mpsc::UnboundedReceiver<Result<Vec<u8>, TransportError>>,
}

#[async_trait::async_trait(?Send)]
impl FrameStream for WsStream {
    async fn next(&mut self) -> Option<Result<Vec<u8>, TransportError>> {
        self.frames.recv().await
    }
}
