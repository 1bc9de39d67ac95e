//! MLS state of one device, in memory, exportable as bytes.
//!
//! OpenMLS keeps every secret it needs between calls (group state, epoch secrets, ratchet
//! positions, KeyPackage private keys) behind its `StorageProvider` trait. [`MlsStore`] is the
//! provider Sirr passes to OpenMLS: the RustCrypto backend plus OpenMLS' in-memory store
//! ([`openmls_memory_storage::MemoryStorage`]). It does no IO itself; instead the whole store
//! can be exported as one byte string ([`MlsStore::export`]) and imported back
//! ([`MlsStore::import`]), so the client can keep it in its encrypted database.
//!
//! One store per device holds all of that device's conversations and pending KeyPackages: a
//! Welcome can only be joined with the store that generated the KeyPackage it was made for.
//!
//! **Persistence discipline.** OpenMLS writes to the store during every group operation and the
//! writes are not transactional. The caller should export after every operation that changed
//! state (`encrypt`, `process_incoming`, `merge_pending_commit`, ...) and persist the bytes
//! atomically; after a failed write, reload from the last persisted export instead of
//! continuing with the in-memory state. Forward secrecy depends on it too: a stale export
//! still holds keys that the live state has already deleted.
//!
//! The device's signature key is *not* in this store (OpenMLS does not need it there): persist
//! [`crate::DeviceIdentity::to_bytes`] separately.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use openmls_rust_crypto::{MemoryStorage, RustCrypto};
use openmls_traits::OpenMlsProvider;

use crate::error::{CryptoError, Result};

/// Format tag of [`MlsStore::export`]; bumped if the layout changes. It does not cover the
/// OpenMLS-internal value format, which is why the OpenMLS version is pinned exactly.
const EXPORT_VERSION: u8 = 1;

/// The OpenMLS provider of one device: crypto backend, randomness and in-memory state.
#[derive(Default, Debug)]
pub struct MlsStore {
    crypto: RustCrypto,
    storage: MemoryStorage,
}

impl MlsStore {
    /// An empty store (a freshly installed device).
    pub fn new() -> Self {
        Self::default()
    }

    /// Serialises the whole state: a version byte followed by the postcard encoding of the
    /// key/value pairs in key order. The output is deterministic for a given state, contains
    /// private keys, and must only be stored encrypted.
    pub fn export(&self) -> Result<Vec<u8>> {
        let values = self
            .storage
            .values
            .read()
            .map_err(|_| CryptoError::Internal("store lock poisoned".into()))?;
        let sorted: BTreeMap<&Vec<u8>, &Vec<u8>> = values.iter().collect();
        let mut out = vec![EXPORT_VERSION];
        let body = postcard::to_allocvec(&sorted).map_err(CryptoError::internal)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Rebuilds a store from [`MlsStore::export`] output. Fails with
    /// [`CryptoError::Malformed`] on anything else; never panics.
    pub fn import(bytes: &[u8]) -> Result<Self> {
        let (&version, body) = bytes
            .split_first()
            .ok_or(CryptoError::Malformed("store export"))?;
        if version != EXPORT_VERSION {
            return Err(CryptoError::Malformed("store export version"));
        }
        let map: BTreeMap<Vec<u8>, Vec<u8>> =
            postcard::from_bytes(body).map_err(|_| CryptoError::Malformed("store export"))?;
        let values: HashMap<Vec<u8>, Vec<u8>> = map.into_iter().collect();
        Ok(Self {
            crypto: RustCrypto::default(),
            storage: MemoryStorage {
                values: RwLock::new(values),
            },
        })
    }

    /// Number of stored entries (diagnostics and tests).
    pub fn len(&self) -> usize {
        self.storage.values.read().map(|v| v.len()).unwrap_or(0)
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl OpenMlsProvider for MlsStore {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_import_round_trip_is_exact() {
        let store = MlsStore::new();
        {
            let mut v = store.storage.values.write().unwrap();
            v.insert(b"k1".to_vec(), b"v1".to_vec());
            v.insert(b"k0".to_vec(), vec![0; 300]);
        }
        let bytes = store.export().unwrap();
        let back = MlsStore::import(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.export().unwrap(), bytes);
    }

    #[test]
    fn import_rejects_garbage() {
        assert!(matches!(MlsStore::import(&[]), Err(CryptoError::Malformed(_))));
        assert!(matches!(
            MlsStore::import(&[9, 1, 2]),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            MlsStore::import(&[EXPORT_VERSION, 0xff, 0xff, 0xff]),
            Err(CryptoError::Malformed(_))
        ));
    }
}
