//! The client core the web UI talks to: `SirrCore` of `web/src/core.ts`, implemented over
//! sirr-client on the browser platform and exported to JavaScript as [`WasmCore`].
//!
//! One instance per tab (the TypeScript adapter takes a Web Lock first, so a second tab is
//! told `locked` instead of writing the same IndexedDB database). It owns:
//! - the [`Client`] of this browser's device, behind an async mutex: every call that changes
//!   state or talks to the server takes it in turn, and so does the receive loop;
//! - a second [`State`] over the same store for reads (conversation list, history), so the UI
//!   is never held up by a receive in progress;
//! - the pending link while this browser waits for approval.
//!
//! Results go to JavaScript as JSON text in the shapes of core.ts (see [`crate::view`]);
//! failures as `{code, message, retryAfterMs}` objects the adapter turns into `CoreError`s.
//! Events (`message`, `connection`, `linkApproved`, `linkFailed`) go to one listener, the
//! adapter, which fans them out.
#![cfg(target_arch = "wasm32")]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{AbortHandle, Abortable};
use js_sys::{Function, Promise};
use serde::Serialize;
use serde_json::json;
use sirr_client::export::{Lang, Local};
use sirr_client::outbox::Queued;
use sirr_client::state::{ConversationRow, State, StoredMessage};
use sirr_client::store::Store;
use sirr_client::{Chat, Client, ClientError, Platform};
use sirr_proto::{ConversationId, DeviceId, MessageId, Phone, Purpose};
use tokio::sync::Mutex;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local};

use crate::view::{self, ErrorView};
use crate::{IdbStore, browser_platform};

/// The IndexedDB database of this origin's device.
const DB_NAME: &str = "sirr";
/// This browser's device name as the person gave it (the server holds it sealed).
const DEVICE_NAME: &str = "web: device name";
/// Per conversation: the arrival time (ms) of the newest message read on this device.
const READ_PREFIX: &str = "web: read up to ";
/// How long one turn of the receive loop waits for a message before it lets others in.
const RECEIVE_WAIT: Duration = Duration::from_millis(200);
/// At most this many recent messages are counted for a conversation's unread badge.
const UNREAD_WINDOW: usize = 100;
/// Reconnection backoff, doubled after each failure.
const BACKOFF_MIN_MS: u64 = 500;
const BACKOFF_MAX_MS: u64 = 15_000;

struct Inner {
    platform: Platform,
    origin: String,
    store: Arc<dyn Store>,
    /// Reads only: the conversation list and history.
    reader: State,
    /// `None` until this browser is linked.
    client: Mutex<Option<Client>>,
    /// Cancels the wait for approval of the pending link.
    link: RefCell<Option<AbortHandle>>,
    listener: RefCell<Option<Function>>,
    connection: Cell<&'static str>,
    running: Cell<bool>,
    /// The account's number once linked (for messages still waiting in the outbox).
    phone: RefCell<String>,
}

/// `SirrCore` for one tab. Create it with [`open_core`].
#[wasm_bindgen]
pub struct WasmCore {
    inner: Rc<Inner>,
}

/// Opens this origin's store and, if the browser is already linked, its client, which starts
/// connecting and receiving at once. `origin` is the page's own (`location.origin`).
#[wasm_bindgen(js_name = openCore)]
pub async fn open_core(origin: String) -> Result<WasmCore, JsValue> {
    let store = IdbStore::open(DB_NAME)
        .await
        .map_err(|e| reject(ErrorView::new("storage", e.to_string())))?;
    let store: Arc<dyn Store> = Arc::new(store);
    let platform = browser_platform();
    let state = State::in_store(store.clone()).await.map_err(client_error)?;
    let client = if state.is_registered() {
        Some(
            Client::load(platform.clone(), state)
                .await
                .map_err(client_error)?,
        )
    } else {
        None
    };
    let linked = client.is_some();
    let phone = client.as_ref().map(|c| c.identity().phone).unwrap_or_default();
    let inner = Rc::new(Inner {
        reader: State::in_store(store.clone()).await.map_err(client_error)?,
        platform,
        origin,
        store,
        client: Mutex::new(client),
        link: RefCell::new(None),
        listener: RefCell::new(None),
        connection: Cell::new("offline"),
        running: Cell::new(false),
        phone: RefCell::new(phone),
    });
    if linked {
        start_receiving(inner.clone());
    }
    Ok(WasmCore { inner })
}

#[wasm_bindgen]
impl WasmCore {
    /// The one listener for events (JSON text of a `CoreEvent`); replaces the previous one.
    #[wasm_bindgen(js_name = setListener)]
    pub fn set_listener(&self, listener: Function) {
        *self.inner.listener.borrow_mut() = Some(listener);
    }

    /// `connecting`, `connected` or `offline`.
    pub fn connection(&self) -> String {
        self.inner.connection.get().to_owned()
    }

    /// The `Identity` (JSON), or `null` before this browser is linked.
    pub fn identity(&self) -> Promise {
        self.call(async |inner| {
            let guard = inner.client.lock().await;
            match guard.as_ref() {
                None => Ok(None),
                Some(c) => Ok(Some(inner.identity_of(c).await)),
            }
        })
    }

    /// Asks the server for a pending link and resolves with `{code, expiresAt}`; waits for the
    /// approval in the background (then `linkApproved`, or `linkFailed` when it expires).
    #[wasm_bindgen(js_name = startLink)]
    pub fn start_link(&self, device_name: String) -> Promise {
        self.call(async move |inner| {
            inner.cancel_link();
            if inner.client.lock().await.is_some() {
                return Err(ErrorView::new("invalid", "this browser is already linked"));
            }
            let state = State::in_store(inner.store.clone())
                .await
                .map_err(|e| view::error(&e))?;
            let pending =
                Client::start_link(inner.platform.clone(), state, &inner.origin, &device_name, None)
                    .await
                    .map_err(|e| view::error(&e))?;
            let code = pending.code().to_owned();
            let expires_at = inner.now_ms() + pending.expires_in().as_millis() as u64;
            let (handle, registration) = AbortHandle::new_pair();
            *inner.link.borrow_mut() = Some(handle);
            let waiting = inner.clone();
            spawn_local(async move {
                let finished = Abortable::new(pending.finish(), registration).await;
                waiting.link.borrow_mut().take();
                match finished {
                    Err(_aborted) => {}
                    Ok(Ok(client)) => waiting.linked(client, &device_name).await,
                    Ok(Err(e)) => waiting.emit(&json!({ "kind": "linkFailed", "error": view::error(&e) })),
                }
            });
            Ok(json!({ "code": code, "expiresAt": expires_at }))
        })
    }

    /// Stops waiting for the pending link; its keys were never stored.
    #[wasm_bindgen(js_name = cancelLink)]
    pub fn cancel_link(&self) -> Promise {
        self.call(async |inner| {
            inner.cancel_link();
            Ok(())
        })
    }

    /// Every active conversation with its newest message and unread count, newest first.
    pub fn conversations(&self) -> Promise {
        self.call(async |inner| {
            let mut out = Vec::new();
            for row in inner.reader.conversations().await.map_err(|e| view::error(&e))? {
                if !row.active {
                    continue;
                }
                out.push(inner.summary_of(&row).await?);
            }
            out.sort_by_key(|s| std::cmp::Reverse(s.time));
            Ok(out)
        })
    }

    /// Up to `limit` messages older than `before` (or the newest), oldest first.
    pub fn messages(&self, conversation: String, limit: u32, before: Option<String>) -> Promise {
        self.call(async move |inner| {
            let id = conversation_id(&conversation)?;
            let before = before.as_deref().map(message_id).transpose()?;
            let page = inner
                .reader
                .history_page(id, limit.min(1_000) as usize, before.as_ref())
                .await
                .map_err(|e| view::error(&e))?;
            let mut out = view::page(&page);
            // What still waits to be sent is the newest of all.
            if before.is_none() {
                let queued = inner.reader.queued().await.map_err(|e| view::error(&e))?;
                out.extend(
                    queued
                        .iter()
                        .filter(|q| q.conversation == id)
                        .map(|q| inner.queued_view(q)),
                );
            }
            Ok(out)
        })
    }

    /// Marks the conversation read up to `up_to` on this device.
    #[wasm_bindgen(js_name = markRead)]
    pub fn mark_read(&self, conversation: String, up_to: String) -> Promise {
        self.call(async move |inner| {
            let id = conversation_id(&conversation)?;
            let m = inner
                .reader
                .message(&message_id(&up_to)?)
                .await
                .map_err(|e| view::error(&e))?
                .ok_or_else(|| ErrorView::new("not_found", "no such message on this device"))?;
            let read = inner.read_up_to(id).await?;
            if m.received_at <= read {
                return Ok(());
            }
            // The newly read incoming messages, for the read receipts.
            let recent = inner
                .reader
                .history(id, UNREAD_WINDOW)
                .await
                .map_err(|e| view::error(&e))?;
            let newly: Vec<StoredMessage> = recent
                .into_iter()
                .filter(|r| r.direction == "in" && r.received_at > read && r.received_at <= m.received_at)
                .collect();
            let key = format!("{READ_PREFIX}{id}");
            inner
                .reader
                .set(&key, &m.received_at.to_be_bytes())
                .await
                .map_err(|e| view::error(&e))?;
            // Sent only with the account's consent (the client asks the server); a receipt
            // that cannot go now is not retried: being read is not worth a queue.
            if let Err(e) = inner.with(async |c| c.send_read_receipts(&newly).await).await {
                crate::js::warn(&format!("sirr: read receipts not sent: {}", e.message));
            }
            Ok(())
        })
    }

    /// The direct conversation with `phone`, created (with its MLS group) if needed.
    #[wasm_bindgen(js_name = openDirect)]
    pub fn open_direct(&self, phone: String) -> Promise {
        self.call(async move |inner| {
            let phone = parse_phone(&phone)?;
            let id = inner.with(async |c| c.open_direct(&phone).await).await?;
            inner.summary(id).await
        })
    }

    /// Encrypts and sends `text`; resolves with the stored message once the server holds it.
    /// While the server cannot be reached the text waits in the outbox instead (state
    /// `sending`, id `queued-N`), and a `receipt` event says when it was sent.
    pub fn send(&self, conversation: String, text: String) -> Promise {
        self.call(async move |inner| {
            let id = conversation_id(&conversation)?;
            let row = inner.row(id).await?;
            // Behind texts already waiting, in the order they were written.
            let waiting = !inner
                .reader
                .queued()
                .await
                .map_err(|e| view::error(&e))?
                .is_empty();
            let sent = if waiting {
                Err(ErrorView::new(
                    "offline",
                    "texts written earlier are still waiting",
                ))
            } else {
                inner.with(async |c| send_in(c, &row, &text).await).await
            };
            match sent {
                Ok(m) => Ok(view::message(&m)),
                Err(e) if e.code == "offline" => {
                    let q = inner
                        .reader
                        .queue_text(id, &text, inner.now_ms())
                        .await
                        .map_err(|e| view::error(&e))?;
                    Ok(inner.queued_view(&q))
                }
                Err(e) => Err(e),
            }
        })
    }

    /// A new group with `members` (phone numbers).
    #[wasm_bindgen(js_name = createGroup)]
    pub fn create_group(&self, name: String, members: Vec<String>) -> Promise {
        self.call(async move |inner| {
            let phones = members
                .iter()
                .map(|p| parse_phone(p))
                .collect::<Result<Vec<_>, _>>()?;
            let id = inner.with(async |c| c.group_create(&name, &phones).await).await?;
            inner.summary(id).await
        })
    }

    /// The group's members, `[{phone}]`.
    pub fn members(&self, conversation: String) -> Promise {
        self.call(async move |inner| {
            let row = inner.row(conversation_id(&conversation)?).await?;
            Ok(row
                .members
                .iter()
                .map(|m| json!({ "phone": m.phone.to_string() }))
                .collect::<Vec<_>>())
        })
    }

    #[wasm_bindgen(js_name = addMembers)]
    pub fn add_members(&self, conversation: String, phones: Vec<String>) -> Promise {
        self.group_change(conversation, phones, false)
    }

    #[wasm_bindgen(js_name = removeMembers)]
    pub fn remove_members(&self, conversation: String, phones: Vec<String>) -> Promise {
        self.group_change(conversation, phones, true)
    }

    #[wasm_bindgen(js_name = renameGroup)]
    pub fn rename_group(&self, conversation: String, name: String) -> Promise {
        self.call(async move |inner| {
            let group = inner.group_name(&conversation).await?;
            inner.with(async |c| c.group_rename(&group, &name).await).await
        })
    }

    #[wasm_bindgen(js_name = leaveGroup)]
    pub fn leave_group(&self, conversation: String) -> Promise {
        self.call(async move |inner| {
            let group = inner.group_name(&conversation).await?;
            inner.with(async |c| c.group_leave(&group).await).await
        })
    }

    /// Disappearing messages for everyone in the conversation; 0 turns them off.
    #[wasm_bindgen(js_name = setTimer)]
    pub fn set_timer(&self, conversation: String, seconds: u32) -> Promise {
        self.call(async move |inner| {
            let row = inner.row(conversation_id(&conversation)?).await?;
            let chat = match (row.name, row.peer) {
                (Some(group), _) => Chat::Group(group),
                (None, Some(peer)) => Chat::Direct(parse_phone(&peer)?),
                (None, None) => return Err(ErrorView::new("not_found", "a chat with nobody")),
            };
            let seconds = (seconds > 0).then_some(seconds);
            inner.with(async |c| c.set_timer(&chat, seconds).await).await
        })
    }

    /// The 60-digit safety number with `phone`.
    #[wasm_bindgen(js_name = safetyNumber)]
    pub fn safety_number(&self, phone: String) -> Promise {
        self.call(async move |inner| {
            let phone = parse_phone(&phone)?;
            inner.with(async |c| c.safety_number(&phone).await).await
        })
    }

    pub fn block(&self, phone: String) -> Promise {
        self.call(async move |inner| {
            let phone = parse_phone(&phone)?;
            inner.with(async |c| c.block(&phone).await).await
        })
    }

    /// The account's devices, `[{id, name, current, linkedAt}]`.
    pub fn devices(&self) -> Promise {
        self.call(async |inner| {
            let (me, devices) = inner
                .with(async |c| Ok((c.identity().device, c.devices().await?)))
                .await?;
            Ok(devices
                .into_iter()
                .map(|d| {
                    json!({
                        "id": d.id.0.to_string(),
                        "name": d.name.unwrap_or_default(),
                        "current": d.id.0 == me,
                        "linkedAt": u64::from(d.created_day) * 86_400_000,
                    })
                })
                .collect::<Vec<_>>())
        })
    }

    /// Renames this browser's device (the only one whose name it sets).
    #[wasm_bindgen(js_name = renameDevice)]
    pub fn rename_device(&self, device: String, name: String) -> Promise {
        self.call(async move |inner| {
            let device = device_id(&device)?;
            inner
                .with(async |c| {
                    if c.identity().device != device.0 {
                        return Err(ClientError::Invalid("a device names only itself".into()));
                    }
                    c.set_device_name(&name).await?;
                    c.state().set(DEVICE_NAME, name.as_bytes()).await
                })
                .await
        })
    }

    #[wasm_bindgen(js_name = removeDevice)]
    pub fn remove_device(&self, device: String) -> Promise {
        self.call(async move |inner| {
            let device = device_id(&device)?;
            inner
                .with(async |c| {
                    if c.identity().device == device.0 {
                        return Err(ClientError::Invalid("this is the current device".into()));
                    }
                    c.remove_device(device).await
                })
                .await
        })
    }

    /// Approves a new device showing `code`; resolves with its `Device`.
    #[wasm_bindgen(js_name = approveLink)]
    pub fn approve_link(&self, code: String) -> Promise {
        self.call(async move |inner| {
            let id = inner.with(async |c| c.approve_link(code.trim()).await).await?;
            Ok(json!({ "id": id.0.to_string(), "name": "", "current": false, "linkedAt": inner.now_ms() }))
        })
    }

    /// Every consent, `[{purpose, granted, offered, changedAt}]`.
    pub fn consents(&self) -> Promise {
        self.call(async |inner| {
            let (_region, consents) = inner.with(async |c| c.consents().await).await?;
            Ok(consents.iter().map(consent).collect::<Vec<_>>())
        })
    }

    #[wasm_bindgen(js_name = setConsent)]
    pub fn set_consent(&self, purpose: String, granted: bool) -> Promise {
        self.call(async move |inner| {
            let p = Purpose::from_name(&purpose)
                .ok_or_else(|| ErrorView::new("invalid", format!("no purpose {purpose}")))?;
            let all = inner.with(async |c| c.set_consent(p, granted).await).await?;
            all.iter()
                .find(|c| c.purpose == p)
                .map(consent)
                .ok_or_else(|| ErrorView::new("internal", "the server did not list the consent"))
        })
    }

    /// The account export as the server's JSON document (text).
    #[wasm_bindgen(js_name = exportJson)]
    pub fn export_json(&self) -> Promise {
        self.call(async |inner| inner.with(async |c| c.export_account().await).await)
    }

    /// The account export as a self-contained page without scripts, in `lang` (en, ar, ms).
    #[wasm_bindgen(js_name = exportHtml)]
    pub fn export_html(&self, lang: String) -> Promise {
        self.call(async move |inner| {
            let now = inner.now_ms();
            inner
                .with(async |c| {
                    let export = c.export_account().await?;
                    let names: Vec<(u32, String)> = c
                        .devices()
                        .await?
                        .into_iter()
                        .filter_map(|d| d.name.map(|n| (d.id.0, n)))
                        .collect();
                    let phone = c.identity().phone;
                    Ok(sirr_client::export::html(
                        &export,
                        &Local {
                            phone: &phone,
                            device_names: &names,
                            lang: Lang::from_locale(Some(&lang)),
                            generated_at_ms: now,
                        },
                    ))
                })
                .await
        })
    }

    /// The disclosure ledger, verified end to end: `{entries, verified}` (a chain that does not
    /// verify rejects with the reason).
    pub fn ledger(&self) -> Promise {
        self.call(async |inner| {
            let entries = inner.with(async |c| c.disclosures().await).await?;
            let entries: Vec<_> = entries
                .iter()
                .map(|e| json!({ "time": e.at_ms, "recipient": e.recipient, "what": e.what, "reason": "" }))
                .collect();
            Ok(json!({ "entries": entries, "verified": true }))
        })
    }
}

impl WasmCore {
    /// Runs `f` on the shared state and turns its result into a promise of JSON text.
    fn call<T, F>(&self, f: F) -> Promise
    where
        T: Serialize,
        F: AsyncFnOnce(Rc<Inner>) -> Result<T, ErrorView> + 'static,
    {
        let inner = self.inner.clone();
        future_to_promise(async move {
            match f(inner).await {
                Ok(v) => serde_json::to_string(&v)
                    .map(|s| JsValue::from_str(&s))
                    .map_err(|e| reject(ErrorView::new("internal", e.to_string()))),
                Err(e) => Err(reject(e)),
            }
        })
    }

    fn group_change(&self, conversation: String, phones: Vec<String>, remove: bool) -> Promise {
        self.call(async move |inner| {
            let group = inner.group_name(&conversation).await?;
            let phones = phones
                .iter()
                .map(|p| parse_phone(p))
                .collect::<Result<Vec<_>, _>>()?;
            inner
                .with(async |c| {
                    for p in &phones {
                        if remove {
                            c.group_remove(&group, p).await?;
                        } else {
                            c.group_add(&group, p).await?;
                        }
                    }
                    Ok(())
                })
                .await
        })
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.platform.clock.now_ms()
    }

    /// Runs `f` with the client (in turn with every other call and the receive loop).
    async fn with<T>(
        &self,
        f: impl AsyncFnOnce(&mut Client) -> sirr_client::Result<T>,
    ) -> Result<T, ErrorView> {
        let mut guard = self.client.lock().await;
        let client = guard
            .as_mut()
            .ok_or_else(|| ErrorView::new("not_linked", "link this browser first"))?;
        f(client).await.map_err(|e| view::error(&e))
    }

    async fn identity_of(&self, c: &Client) -> view::IdentityView {
        let id = c.identity();
        let name = self.reader.get(DEVICE_NAME).await.ok().flatten();
        view::IdentityView {
            phone: id.phone,
            device: id.device.to_string(),
            device_name: name
                .map(|n| String::from_utf8_lossy(&n).into_owned())
                .unwrap_or_default(),
        }
    }

    fn queued_view(&self, q: &Queued) -> view::MessageView {
        view::MessageView {
            id: queued_id(q.id),
            conversation: q.conversation.to_string(),
            direction: "out",
            from: self.phone.borrow().clone(),
            text: q.text.clone(),
            time: q.written_at,
            state: Some("sending"),
            expires_at: None,
        }
    }

    fn cancel_link(&self) {
        if let Some(h) = self.link.borrow_mut().take() {
            h.abort();
        }
    }

    /// The link was approved: keep the client, say so, and start receiving.
    async fn linked(self: &Rc<Self>, client: Client, device_name: &str) {
        if let Err(e) = client.state().set(DEVICE_NAME, device_name.as_bytes()).await {
            crate::js::warn(&format!("could not keep this device's name: {e}"));
        }
        let identity = self.identity_of(&client).await;
        *self.phone.borrow_mut() = identity.phone.clone();
        *self.client.lock().await = Some(client);
        self.emit(&json!({ "kind": "linkApproved", "identity": identity }));
        start_receiving(self.clone());
    }

    fn emit(&self, event: &serde_json::Value) {
        // Cloned out first: the listener may replace itself.
        let listener = self.listener.borrow().clone();
        if let Some(f) = listener {
            let _ = f.call1(&JsValue::NULL, &JsValue::from_str(&event.to_string()));
        }
    }

    fn set_connection(&self, state: &'static str) {
        if self.connection.replace(state) != state {
            self.emit(&json!({ "kind": "connection", "state": state }));
        }
    }

    async fn row(&self, id: ConversationId) -> Result<ConversationRow, ErrorView> {
        self.reader
            .conversation(id)
            .await
            .map_err(|e| view::error(&e))?
            .ok_or_else(|| ErrorView::new("not_found", "no such conversation on this device"))
    }

    async fn group_name(&self, conversation: &str) -> Result<String, ErrorView> {
        self.row(conversation_id(conversation)?)
            .await?
            .name
            .ok_or_else(|| ErrorView::new("not_member", "not a group"))
    }

    async fn read_up_to(&self, id: ConversationId) -> Result<u64, ErrorView> {
        let v = self
            .reader
            .get(&format!("{READ_PREFIX}{id}"))
            .await
            .map_err(|e| view::error(&e))?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    async fn summary(&self, id: ConversationId) -> Result<view::SummaryView, ErrorView> {
        let row = self.row(id).await?;
        self.summary_of(&row).await
    }

    async fn summary_of(&self, row: &ConversationRow) -> Result<view::SummaryView, ErrorView> {
        let err = |e: ClientError| view::error(&e);
        // A few rows: the newest may be receipts, which are not shown.
        let newest = self.reader.history(row.id, 8).await.map_err(err)?;
        let last = view::last_shown(&newest);
        let read = self.read_up_to(row.id).await?;
        // Only a conversation with something new is read further back.
        let unread = match newest.last() {
            Some(m) if m.received_at > read => {
                let recent = self.reader.history(row.id, UNREAD_WINDOW).await.map_err(err)?;
                view::unread(&recent, read)
            }
            _ => 0,
        };
        let timer = self.reader.timer(row.id).await.map_err(err)?;
        Ok(view::summary(row, last, unread, timer))
    }
}

/// Starts the receive loop once: connect (with backoff while the server is unreachable), take
/// what arrives, announce each new message, and give every other call its turn in between.
fn start_receiving(inner: Rc<Inner>) {
    if inner.running.replace(true) {
        return;
    }
    spawn_local(async move {
        let clock = inner.platform.clock.clone();
        let mut backoff = BACKOFF_MIN_MS;
        let mut connected = false;
        loop {
            let turn = {
                let mut guard = inner.client.lock().await;
                let Some(client) = guard.as_mut() else { break };
                receive_turn(&inner, client, &mut connected).await
            };
            match turn {
                Ok(()) => {
                    backoff = BACKOFF_MIN_MS;
                    // Lets a waiting call take the client before the next turn.
                    clock.sleep(0).await;
                }
                Err(e) => {
                    crate::js::warn(&format!(
                        "sirr: the connection to the server broke ({e}); retrying"
                    ));
                    inner.set_connection("offline");
                    clock.sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX_MS);
                }
            }
        }
        inner.running.set(false);
    });
}

async fn receive_turn(inner: &Inner, client: &mut Client, connected: &mut bool) -> sirr_client::Result<()> {
    if !*connected {
        inner.set_connection("connecting");
        if let Err(e) = client.connect().await {
            client.disconnect().await;
            return Err(e);
        }
        *connected = true;
        inner.set_connection("connected");
    }
    if let Err(e) = flush_outbox(inner, client).await {
        client.disconnect().await;
        *connected = false;
        return Err(e);
    }
    let received = client.receive(RECEIVE_WAIT).await;
    // Whatever was stored before a failure is announced all the same.
    let new = client.take_unread().await?;
    for m in &new {
        match view::read_ids(m) {
            Some(ids) => {
                for id in ids {
                    inner.emit(&json!({
                        "kind": "receipt",
                        "conversation": m.conversation,
                        "message": id,
                        "state": "read",
                    }));
                }
            }
            None => inner.emit(&json!({ "kind": "message", "message": view::message(m) })),
        }
    }
    if let Err(e) = received {
        client.disconnect().await;
        *connected = false;
        return Err(e);
    }
    Ok(())
}

/// Sends `text` in the conversation `row` and returns it as stored (marked shown: it was typed
/// here, so the receive loop does not announce it again).
async fn send_in(c: &mut Client, row: &ConversationRow, text: &str) -> sirr_client::Result<StoredMessage> {
    let mid = match (&row.name, &row.peer) {
        (Some(group), _) => c.group_send(group, text).await?,
        (None, Some(peer)) => {
            let peer = Phone::parse(peer).map_err(|e| ClientError::State(format!("stored peer: {e}")))?;
            c.send_text(&peer, text).await?
        }
        (None, None) => return Err(ClientError::State("a chat with nobody".into())),
    };
    c.state().mark_printed(&mid).await?;
    c.state()
        .message(&mid)
        .await?
        .ok_or_else(|| ClientError::State("the sent message was not stored".into()))
}

/// Sends what waits in the outbox, oldest first, each announced with a `receipt`. Stops at
/// the first failure to reach the server (the rest wait for the next connection); a text the
/// server refuses for another reason leaves the queue as `failed`.
async fn flush_outbox(inner: &Inner, client: &mut Client) -> sirr_client::Result<()> {
    for q in client.state().queued().await? {
        let row = client.state().conversation(q.conversation).await?;
        let sent = match &row {
            Some(row) => send_in(client, row, &q.text).await,
            None => Err(ClientError::State("the conversation is gone".into())),
        };
        let state = match sent {
            Ok(_) => "sent",
            Err(e) if view::error(&e).code == "offline" => return Err(e),
            Err(e) => {
                crate::js::warn(&format!("sirr: a queued message was refused: {e}"));
                "failed"
            }
        };
        client.state().unqueue(q.id).await?;
        inner.emit(&json!({
            "kind": "receipt",
            "conversation": q.conversation.to_string(),
            "message": queued_id(q.id),
            "state": state,
        }));
    }
    Ok(())
}

fn queued_id(id: u64) -> String {
    format!("queued-{id}")
}

fn consent(c: &sirr_proto::ConsentState) -> serde_json::Value {
    json!({
        "purpose": c.purpose.name(),
        "granted": c.granted,
        "offered": c.offered,
        "changedAt": c.changed_at_ms,
    })
}

fn conversation_id(s: &str) -> Result<ConversationId, ErrorView> {
    s.parse()
        .map_err(|_| ErrorView::new("not_found", format!("{s:?} is not a conversation id")))
}

fn message_id(s: &str) -> Result<MessageId, ErrorView> {
    s.parse()
        .map_err(|_| ErrorView::new("not_found", format!("{s:?} is not a message id")))
}

fn device_id(s: &str) -> Result<DeviceId, ErrorView> {
    s.parse::<u32>()
        .map(DeviceId)
        .map_err(|_| ErrorView::new("not_found", format!("{s:?} is not a device id")))
}

fn parse_phone(s: &str) -> Result<Phone, ErrorView> {
    Phone::parse(s.trim()).map_err(|e| ErrorView::new("invalid_phone", e.to_string()))
}

fn client_error(e: ClientError) -> JsValue {
    reject(view::error(&e))
}

/// A rejection value: `{code, message, retryAfterMs?}`.
fn reject(e: ErrorView) -> JsValue {
    let obj = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&obj, &"code".into(), &e.code.into());
    let _ = js_sys::Reflect::set(&obj, &"message".into(), &e.message.into());
    if let Some(ms) = e.retry_after_ms {
        let _ = js_sys::Reflect::set(&obj, &"retryAfterMs".into(), &ms.into());
    }
    obj.into()
}
