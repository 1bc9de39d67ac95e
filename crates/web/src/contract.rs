//! Test hooks the browser tests in web/e2e call, built only with the `contract` feature:
//! `runStoreContract` (sirr-client's store contract suite in the page, against the memory store
//! and the IndexedDB store) and `pingServer` (one request over the browser platform).
#![cfg(target_arch = "wasm32")]

use sirr_client::Connection;
use sirr_client::store::{Batch, MemoryStore, Store, StoreError, Table};
use sirr_proto::{Request, Response};
use wasm_bindgen::prelude::*;

use crate::IdbStore;

/// A value whose bytes the browser test looks for, and must not find, in the raw database.
const SENTINEL: &[u8] = b"sirr plaintext sentinel: this must never be stored in the clear";

/// Runs the contract suite against the memory store and against a new IndexedDB database
/// `db_name` (which must not exist), then writes [`SENTINEL`] at `kv`/`sentinel` and reads it
/// back through a second open (the data key unwraps again; the value survived the close).
/// Resolves to the sentinel's text; a broken promise panics, and the panic hook reports it.
#[wasm_bindgen(js_name = runStoreContract)]
pub async fn run_store_contract(db_name: String) -> Result<JsValue, JsValue> {
    // A panic traps the wasm and leaves this call's promise pending forever: say what broke on
    // the console and in `globalThis.sirrPanic`, which the test watches.
    std::panic::set_hook(Box::new(|info| {
        let text = JsValue::from_str(&format!("panic: {info}"));
        web_sys::console::error_1(&text);
        let _ = js_sys::Reflect::set(&js_sys::global(), &"sirrPanic".into(), &text);
    }));
    sirr_client::store::contract::run(&MemoryStore::new()).await;
    let store = IdbStore::open(&db_name).await.map_err(to_js)?;
    sirr_client::store::contract::run(&store).await;
    drop(store);

    let store = IdbStore::open(&db_name).await.map_err(to_js)?;
    let mut b = Batch::new();
    b.put(Table::Kv, b"sentinel".to_vec(), SENTINEL.to_vec());
    store.commit(b).await.map_err(to_js)?;
    drop(store);
    let store = IdbStore::open(&db_name).await.map_err(to_js)?;
    let got = store.get(Table::Kv, b"sentinel").await.map_err(to_js)?;
    if got.as_deref() != Some(SENTINEL) {
        return Err(JsValue::from_str("the sentinel did not survive a reopen"));
    }
    Ok(JsValue::from_str(&String::from_utf8_lossy(SENTINEL)))
}

fn to_js(e: StoreError) -> JsValue {
    JsValue::from_str(&e.to_string())
}

/// Opens a [`Connection`] to `origin` (the page's sirrd) over [`crate::browser_platform`],
/// sends `Ping` (which needs no account) and resolves to the answer's name (`"Pong"`).
#[wasm_bindgen(js_name = pingServer)]
pub async fn ping_server(origin: String) -> Result<JsValue, JsValue> {
    let platform = crate::browser_platform();
    let conn = Connection::open(&platform, &origin, None)
        .await
        .map_err(|e| JsValue::from_str(&e.to_string()))?;
    let answer = conn.request(Request::Ping).await;
    conn.close().await;
    match answer {
        Ok(Response::Pong) => Ok(JsValue::from_str("Pong")),
        Ok(other) => Err(JsValue::from_str(&format!("unexpected answer {other:?}"))),
        Err(e) => Err(JsValue::from_str(&e.to_string())),
    }
}

/// The value at `key` (UTF-8) in the table named `table` of the IndexedDB database `db_name`,
/// as text, or `null`; rejects with the store's error (the tests move sealed values around in
/// the raw database and expect `Corrupt`).
#[wasm_bindgen(js_name = readValue)]
pub async fn read_value(db_name: String, table: String, key: String) -> Result<JsValue, JsValue> {
    let table = Table::ALL
        .into_iter()
        .find(|t| t.name() == table)
        .ok_or_else(|| JsValue::from_str(&format!("no table {table}")))?;
    let store = IdbStore::open(&db_name).await.map_err(to_js)?;
    let value = store.get(table, key.as_bytes()).await.map_err(to_js)?;
    Ok(value.map_or(JsValue::NULL, |v| JsValue::from_str(&String::from_utf8_lossy(&v))))
}
