//! The local store over IndexedDB, encrypted at rest.
//!
//! Layout: one database per profile (its name chosen by the caller), one object store per
//! [`Table`] named [`Table::name`], plus `_meta` for the key material. One object store per
//! table (rather than one store keyed `[table, key]`) keeps each table's keys in their own
//! B-tree, so a scan or a [`Op::DeleteRange`] is one native key range and a table can be
//! cleared whole. Keys are `Uint8Array`s, which IndexedDB stores as binary keys and orders
//! bytewise — exactly the order [`Store`] promises. Keys are not encrypted (the order must
//! hold); they are ids, numbers and hashes chosen by the client, and the index tables that
//! would reveal more hold only ids.
//!
//! At rest (as Element Web does): every value is sealed with AES-256-GCM under a random 256-bit
//! data key, with a fresh random 96-bit nonce per value and `table ‖ 0 ‖ key` as associated
//! data, so a value moved to another key or table fails to open rather than being misread.
//! The data key is kept in `_meta` wrapped (AES-GCM) by a **non-extractable** WebCrypto key,
//! itself stored in IndexedDB as a `CryptoKey` by structured clone: script in the origin can
//! use it to unwrap, but nothing — not this code, not an XSS, not a copy of the profile's
//! files read offline without the browser's own key store — can read its bytes. The data key
//! is unwrapped once at open and sealing is synchronous Rust, so a commit never awaits
//! WebCrypto inside a transaction.
//!
//! Transactions: each [`Store::commit`] is ONE readwrite transaction over the tables it
//! touches, with every put and delete issued synchronously and then only the transaction's
//! `complete` awaited (an IndexedDB transaction dies if the code awaits anything else). Strict
//! durability is asked for, so `complete` means on disk. Any failed request aborts the whole
//! transaction: nothing of a failed batch is applied.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::ops::Bound;
use std::rc::Rc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use js_sys::{Array, Object, Reflect, Uint8Array};
use rand::RngCore;
use sirr_client::store::{Batch, Direction, KeyRange, Op, Store, StoreError, Table};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    CryptoKey, IdbCursorDirection, IdbCursorWithValue, IdbDatabase, IdbFactory, IdbKeyRange, IdbObjectStore,
    IdbOpenDbRequest, IdbRequest, IdbTransaction, IdbTransactionMode, SubtleCrypto,
};

use crate::js::{deferred, describe, global_property};

/// The schema version: raise it whenever [`Table::ALL`] gains a table, so the upgrade creates
/// the new object store (an open checks they all exist).
const SCHEMA_VERSION: u32 = 1;
/// The object store of the key material (no [`Table::name`] starts with `_`).
const META: &str = "_meta";
/// The `_meta` record holding the wrapping `CryptoKey` and the wrapped data key.
const KEY_RECORD: &str = "data-key";
/// Associated data of the wrapped data key.
const WRAP_AAD: &[u8] = b"sirr-web idb data key v1";
/// Prefix of every value's associated data (then table name, 0, key).
const VALUE_AAD: &[u8] = b"sirr-web idb v1\0";
const NONCE_LEN: usize = 12;

/// The local store in IndexedDB. Dropping it closes the database.
pub struct IdbStore {
    db: IdbDatabase,
    cipher: Aes256Gcm,
}

impl IdbStore {
    /// Opens (creating if needed) the database `name` and its key material. Two stores may
    /// open the same database; each commit is still atomic.
    pub async fn open(name: &str) -> Result<IdbStore, StoreError> {
        let db = open_db(name).await?;
        for t in Table::ALL.iter().map(|t| t.name()).chain([META]) {
            if !db.object_store_names().contains(t) {
                return Err(StoreError::Corrupt(format!(
                    "the database has no object store {t} (SCHEMA_VERSION not raised?)"
                )));
            }
        }
        let data_key = data_key(&db).await?;
        let cipher = Aes256Gcm::new_from_slice(&data_key)
            .map_err(|_| StoreError::Corrupt("the data key has the wrong length".into()))?;
        Ok(IdbStore { db, cipher })
    }

    /// Deletes the database `name` and everything in it (waits until no tab holds it open).
    pub async fn delete(name: &str) -> Result<(), StoreError> {
        let req = factory()?.delete_database(name).map_err(js_error)?;
        request(req.unchecked_ref()).await.map(|_| ())
    }

    fn seal(&self, table: Table, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = value_aad(table, key);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Backend("sealing a value failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open_value(&self, table: Table, key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("a value in {} does not open", table.name()));
        if sealed.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let aad = value_aad(table, key);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| corrupt())
    }

    /// A transaction over `names` with strict durability (`complete` then means on disk;
    /// Chromium's default is relaxed). web-sys binds the options argument only as an unstable
    /// API, so the call goes through `Reflect`.
    fn transaction(&self, names: &[&str], mode: IdbTransactionMode) -> Result<IdbTransaction, StoreError> {
        let names: Array = names.iter().map(|n| JsValue::from_str(n)).collect();
        let mode = match mode {
            IdbTransactionMode::Readwrite => "readwrite",
            _ => "readonly",
        };
        let options = object(&[("durability", "strict".into())]);
        let method: js_sys::Function = Reflect::get(&self.db, &"transaction".into())
            .map_err(js_error)?
            .dyn_into()
            .map_err(js_error)?;
        Reflect::apply(&method, &self.db, &Array::of3(&names, &mode.into(), &options))
            .map(JsCast::unchecked_into)
            .map_err(js_error)
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        self.db.close();
    }
}

#[async_trait::async_trait(?Send)]
impl Store for IdbStore {
    async fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(table, key)?;
        let tx = self.transaction(&[table.name()], IdbTransactionMode::Readonly)?;
        let store = tx.object_store(table.name()).map_err(js_error)?;
        let req = store.get(&bytes(key)).map_err(js_error)?;
        let value = request(&req).await?;
        if value.is_undefined() {
            return Ok(None);
        }
        Ok(Some(self.open_value(table, key, &value_bytes(&value)?)?))
    }

    async fn scan(
        &self,
        table: Table,
        range: KeyRange,
        direction: Direction,
        limit: Option<usize>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        let Some(range) = key_range(&range)? else {
            return Ok(Vec::new());
        };
        let tx = self.transaction(&[table.name()], IdbTransactionMode::Readonly)?;
        let store = tx.object_store(table.name()).map_err(js_error)?;
        let direction = match direction {
            Direction::Forward => IdbCursorDirection::Next,
            Direction::Reverse => IdbCursorDirection::Prev,
        };
        let req = store
            .open_cursor_with_range_and_direction(&range, direction)
            .map_err(js_error)?;
        let raw = walk(&req, limit).await?;
        raw.into_iter()
            .map(|(k, v)| {
                let v = self.open_value(table, &k, &v)?;
                Ok((k, v))
            })
            .collect()
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Check and seal everything first: once the transaction exists, nothing may fail
        // half-way except IndexedDB itself (which then aborts it).
        let mut names: Vec<&str> = Vec::new();
        let mut writes = Vec::with_capacity(batch.0.len());
        for op in batch.0 {
            let (Op::Put { table, .. } | Op::Delete { table, .. } | Op::DeleteRange { table, .. }) = &op;
            let table = *table;
            if !names.contains(&table.name()) {
                names.push(table.name());
            }
            writes.push(match op {
                Op::Put { table, key, value } => {
                    check_key(table, &key)?;
                    let sealed = self.seal(table, &key, &value)?;
                    Write::Put(table, bytes(&key), bytes(&sealed))
                }
                Op::Delete { table, key } => {
                    check_key(table, &key)?;
                    Write::Delete(table, bytes(&key))
                }
                Op::DeleteRange { table, range } if range == KeyRange::all() => Write::Clear(table),
                Op::DeleteRange { table, range } => match key_range(&range)? {
                    Some(r) if r.is_null() => Write::Clear(table),
                    Some(r) => Write::Delete(table, r),
                    None => continue,
                },
            });
        }
        let tx = self.transaction(&names, IdbTransactionMode::Readwrite)?;
        let (done, resolve, reject) = deferred();
        tx.set_oncomplete(Some(&resolve));
        tx.set_onabort(Some(&reject));
        let issued = writes.iter().try_for_each(|w| -> Result<(), JsValue> {
            let store = |t: &Table| tx.object_store(t.name());
            match w {
                Write::Put(t, k, v) => store(t)?.put_with_key(v, k).map(drop),
                Write::Delete(t, k) => store(t)?.delete(k).map(drop),
                Write::Clear(t) => store(t)?.clear().map(drop),
            }
        });
        if let Err(e) = issued {
            // Wait for the abort: it settles `done`, which must not reject unhandled.
            if tx.abort().is_ok() {
                let _ = JsFuture::from(done).await;
            }
            return Err(js_error(e));
        }
        let outcome = JsFuture::from(done).await;
        tx.set_oncomplete(None);
        tx.set_onabort(None);
        match outcome {
            Ok(_) => Ok(()),
            Err(_) => Err(match tx.error() {
                Some(e) => js_error(e.into()),
                None => StoreError::Unavailable("the transaction was aborted".into()),
            }),
        }
    }
}

/// One write of a commit, ready to issue.
enum Write {
    Put(Table, JsValue, JsValue),
    Delete(Table, JsValue),
    Clear(Table),
}

fn check_key(table: Table, key: &[u8]) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::Invalid(format!(
            "an empty key in table {}",
            table.name()
        )));
    }
    Ok(())
}

fn value_aad(table: Table, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(VALUE_AAD.len() + table.name().len() + 1 + key.len());
    aad.extend_from_slice(VALUE_AAD);
    aad.extend_from_slice(table.name().as_bytes());
    aad.push(0);
    aad.extend_from_slice(key);
    aad
}

fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

/// The bytes of a stored value or key (`ArrayBuffer` or a typed array).
fn value_bytes(v: &JsValue) -> Result<Vec<u8>, StoreError> {
    if v.is_instance_of::<js_sys::ArrayBuffer>() || js_sys::ArrayBuffer::is_view(v) {
        Ok(Uint8Array::new(v).to_vec())
    } else {
        Err(StoreError::Corrupt("a record is not bytes".into()))
    }
}

/// The IndexedDB range for `range`; `None` if it holds no key (IndexedDB throws on those).
fn key_range(range: &KeyRange) -> Result<Option<JsValue>, StoreError> {
    let (lower, lower_open) = match &range.start {
        Bound::Included(k) => (Some(k), false),
        Bound::Excluded(k) => (Some(k), true),
        Bound::Unbounded => (None, false),
    };
    let (upper, upper_open) = match &range.end {
        Bound::Included(k) => (Some(k), false),
        Bound::Excluded(k) => (Some(k), true),
        Bound::Unbounded => (None, false),
    };
    // The empty key sorts first and is never stored: an unbounded start is as good.
    let (lower, lower_open) = match lower {
        Some(k) if k.is_empty() && !lower_open => (None, false),
        other => (other, lower_open),
    };
    if upper.is_some_and(|u| u.is_empty()) {
        return Ok(None);
    }
    let r = match (lower, upper) {
        (None, None) => return Ok(Some(JsValue::NULL)),
        (Some(l), None) => IdbKeyRange::lower_bound_with_open(&bytes(l), lower_open),
        (None, Some(u)) => IdbKeyRange::upper_bound_with_open(&bytes(u), upper_open),
        (Some(l), Some(u)) => {
            if l > u || (l == u && (lower_open || upper_open)) {
                return Ok(None);
            }
            IdbKeyRange::bound_with_lower_open_and_upper_open(&bytes(l), &bytes(u), lower_open, upper_open)
        }
    };
    r.map(|r| Some(r.into())).map_err(js_error)
}

/// The result of `req` once it succeeds.
async fn request(req: &IdbRequest) -> Result<JsValue, StoreError> {
    let (done, resolve, reject) = deferred();
    req.set_onsuccess(Some(&resolve));
    req.set_onerror(Some(&reject));
    let outcome = JsFuture::from(done).await;
    req.set_onsuccess(None);
    req.set_onerror(None);
    match outcome {
        Ok(_) => req.result().map_err(js_error),
        Err(_) => Err(request_error(req)),
    }
}

fn request_error(req: &IdbRequest) -> StoreError {
    match req.error() {
        Ok(Some(e)) => js_error(e.into()),
        _ => StoreError::Unavailable("an IndexedDB request failed".into()),
    }
}

/// Raw (key, sealed value) rows of a scan.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Every (key, value) a cursor request visits, up to `limit`. The cursor is advanced inside
/// its success event, synchronously, so the transaction stays active throughout.
async fn walk(req: &IdbRequest, limit: Option<usize>) -> Result<Rows, StoreError> {
    let (done, resolve, reject) = deferred();
    let out: Rc<RefCell<Result<Rows, StoreError>>> = Rc::new(RefCell::new(Ok(Vec::new())));
    let on_success = {
        let (req, out) = (req.clone(), out.clone());
        Closure::<dyn FnMut()>::new(move || {
            let cursor = match req.result() {
                Ok(c) if !c.is_null() && !c.is_undefined() => c.unchecked_into::<IdbCursorWithValue>(),
                _ => {
                    let _ = resolve.call0(&JsValue::NULL);
                    return;
                }
            };
            let mut out = out.borrow_mut();
            let Ok(rows) = out.as_mut() else { return };
            let row = cursor
                .key()
                .map_err(js_error)
                .and_then(|k| value_bytes(&k))
                .and_then(|k| Ok((k, value_bytes(&cursor.value().map_err(js_error)?)?)));
            match row {
                Ok(row) => rows.push(row),
                Err(e) => {
                    *out = Err(e);
                    let _ = resolve.call0(&JsValue::NULL);
                    return;
                }
            }
            if limit.is_some_and(|l| rows.len() >= l) {
                let _ = resolve.call0(&JsValue::NULL);
            } else if let Err(e) = cursor.continue_() {
                *out = Err(js_error(e));
                let _ = resolve.call0(&JsValue::NULL);
            }
        })
    };
    req.set_onsuccess(Some(on_success.as_ref().unchecked_ref()));
    req.set_onerror(Some(&reject));
    let outcome = JsFuture::from(done).await;
    req.set_onsuccess(None);
    req.set_onerror(None);
    drop(on_success);
    if outcome.is_err() {
        return Err(request_error(req));
    }
    out.replace(Ok(Vec::new()))
}

fn factory() -> Result<IdbFactory, StoreError> {
    global_property("indexedDB")
        .map(JsCast::unchecked_into)
        .ok_or_else(|| StoreError::Unavailable("this browser offers no IndexedDB here".into()))
}

fn subtle() -> Result<SubtleCrypto, StoreError> {
    global_property("crypto")
        .and_then(|c| Reflect::get(&c, &"subtle".into()).ok())
        .filter(|s| s.is_object())
        .map(JsCast::unchecked_into)
        .ok_or_else(|| StoreError::Unavailable("WebCrypto is unavailable (not a secure context?)".into()))
}

/// Opens `name`, creating or upgrading its object stores.
async fn open_db(name: &str) -> Result<IdbDatabase, StoreError> {
    let req: IdbOpenDbRequest = factory()?.open_with_u32(name, SCHEMA_VERSION).map_err(js_error)?;
    let on_upgrade = {
        let req = req.clone();
        Closure::<dyn FnMut()>::new(move || {
            let Ok(db) = req.result() else { return };
            let db: IdbDatabase = db.unchecked_into();
            for t in Table::ALL.iter().map(|t| t.name()).chain([META]) {
                if !db.object_store_names().contains(t) {
                    // A failure aborts the upgrade, and the open then fails with its error.
                    let _ = db.create_object_store(t);
                }
            }
        })
    };
    let (blocked, on_blocked, _) = deferred();
    req.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    req.set_onblocked(Some(&on_blocked));
    let opened = request(req.unchecked_ref());
    let blocked = JsFuture::from(blocked);
    let outcome = futures_select(opened, blocked).await;
    req.set_onupgradeneeded(None);
    req.set_onblocked(None);
    drop(on_upgrade);
    match outcome {
        Some(r) => Ok(r?.unchecked_into()),
        None => Err(StoreError::Unavailable(
            "another tab holds an older version of the local store open".into(),
        )),
    }
}

/// `Some(a's output)`, or `None` if `b` completes first.
async fn futures_select<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> Option<A::Output> {
    let (a, b) = (std::pin::pin!(a), std::pin::pin!(b));
    match futures_util::future::select(a, b).await {
        futures_util::future::Either::Left((v, _)) => Some(v),
        futures_util::future::Either::Right(_) => None,
    }
}

/// The data key: unwrapped from `_meta`, or made, wrapped and stored there on first open.
async fn data_key(db: &IdbDatabase) -> Result<Vec<u8>, StoreError> {
    if let Some(key) = read_data_key(db).await? {
        return Ok(key);
    }
    let subtle = subtle()?;
    let algorithm = object(&[("name", "AES-GCM".into()), ("length", 256.into())]);
    let usages = Array::of2(&"encrypt".into(), &"decrypt".into());
    // extractable = false: the key's bytes never reach script.
    let wrapping: CryptoKey = JsFuture::from(
        subtle
            .generate_key_with_object(&algorithm, false, &usages)
            .map_err(js_error)?,
    )
    .await
    .map_err(js_error)?
    .unchecked_into();
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let mut iv = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut iv);
    let params = gcm_params(&iv);
    let wrapped = JsFuture::from(
        subtle
            .encrypt_with_object_and_u8_array(&params, &wrapping, &key)
            .map_err(js_error)?,
    )
    .await
    .map_err(js_error)?;
    let mut stored = iv.to_vec();
    stored.extend(Uint8Array::new(&wrapped).to_vec());
    let record = object(&[("wrapping", wrapping.into()), ("wrapped", bytes(&stored))]);
    let tx = db
        .transaction_with_str_and_mode(META, IdbTransactionMode::Readwrite)
        .map_err(js_error)?;
    let (done, resolve, reject) = deferred();
    tx.set_oncomplete(Some(&resolve));
    tx.set_onabort(Some(&reject));
    // `add`, not `put`: if another tab made a key meanwhile, this fails and theirs is used.
    let added = tx
        .object_store(META)
        .and_then(|s: IdbObjectStore| s.add_with_key(&record, &KEY_RECORD.into()));
    if let Err(e) = added {
        if tx.abort().is_ok() {
            let _ = JsFuture::from(done).await;
        }
        return Err(js_error(e));
    }
    let outcome = JsFuture::from(done).await;
    tx.set_oncomplete(None);
    tx.set_onabort(None);
    match outcome {
        Ok(_) => Ok(key),
        Err(_) => match read_data_key(db).await? {
            Some(theirs) => Ok(theirs),
            None => Err(match tx.error() {
                Some(e) => js_error(e.into()),
                None => StoreError::Unavailable("storing the data key failed".into()),
            }),
        },
    }
}

async fn read_data_key(db: &IdbDatabase) -> Result<Option<Vec<u8>>, StoreError> {
    let tx = db.transaction_with_str(META).map_err(js_error)?;
    let req = tx
        .object_store(META)
        .and_then(|s| s.get(&KEY_RECORD.into()))
        .map_err(js_error)?;
    let record = request(&req).await?;
    if record.is_undefined() {
        return Ok(None);
    }
    let corrupt = || StoreError::Corrupt("the data key record is damaged".into());
    let wrapping: CryptoKey = Reflect::get(&record, &"wrapping".into())
        .ok()
        .and_then(|k| k.dyn_into().ok())
        .ok_or_else(corrupt)?;
    let wrapped = value_bytes(&Reflect::get(&record, &"wrapped".into()).map_err(|_| corrupt())?)?;
    if wrapped.len() <= NONCE_LEN {
        return Err(corrupt());
    }
    let (iv, ct) = wrapped.split_at(NONCE_LEN);
    let params = gcm_params(iv);
    let key = JsFuture::from(
        subtle()?
            .decrypt_with_object_and_u8_array(&params, &wrapping, ct)
            .map_err(js_error)?,
    )
    .await
    .map_err(|_| corrupt())?;
    Ok(Some(Uint8Array::new(&key).to_vec()))
}

fn gcm_params(iv: &[u8]) -> Object {
    object(&[
        ("name", "AES-GCM".into()),
        ("iv", bytes(iv)),
        ("additionalData", bytes(WRAP_AAD)),
    ])
}

fn object(fields: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o
}

/// Maps an IndexedDB or WebCrypto failure onto the store's errors.
fn js_error(e: JsValue) -> StoreError {
    let (name, message) = describe(&e);
    match name.as_str() {
        "QuotaExceededError" => StoreError::Full,
        "DataCloneError" | "DataError" | "NotFoundError" => StoreError::Corrupt(format!("{name}: {message}")),
        "InvalidStateError"
        | "TransactionInactiveError"
        | "AbortError"
        | "UnknownError"
        | "VersionError"
        | "SecurityError"
        | "InvalidAccessError" => StoreError::Unavailable(format!("{name}: {message}")),
        _ => StoreError::Backend(format!("{name}: {message}")),
    }
}
