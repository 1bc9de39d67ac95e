//! This device's secrets: its MLS identity and the MLS state, sealed at rest in `state.db`.

use sirr_crypto::seal::{open_at_rest, seal_at_rest};
use sirr_crypto::{AccountKey, DeviceIdentity, MlsStore, ProfileKey};
use sirr_proto::{AccountId, DeviceId};

use crate::error::{ClientError, Result};
use crate::state::State;

const IDENTITY: &str = "identity";
const MLS: &str = "mls";
const ACCOUNT_KEY: &str = "account key";
const PROFILE_KEY: &str = "profile key";

/// The device identity and the OpenMLS state, in memory while the client runs.
///
/// Every change to the MLS state must reach disk before anything that depends on it leaves the
/// device ([`Keys::save`]): a ratchet advanced by an encryption, a pending commit, a merged one.
pub(crate) struct Keys {
    pub identity: DeviceIdentity,
    pub store: MlsStore,
    /// Held by the account's first device and the devices it approved; signs the device list.
    pub account_key: Option<AccountKey>,
    /// The account's profile key (with the account key: its approved devices share it), given
    /// to the people the account talks to so they can send to it with sealed sender.
    pub profile_key: Option<ProfileKey>,
    key: [u8; 32],
}

impl Keys {
    /// A new identity for a freshly registered device.
    pub fn create(
        state: &State,
        identity: DeviceIdentity,
        account_key: Option<AccountKey>,
        profile_key: Option<ProfileKey>,
    ) -> Result<Keys> {
        let key = state.at_rest_key()?;
        let keys = Keys {
            identity,
            store: MlsStore::new(),
            account_key,
            profile_key,
            key,
        };
        state.tx(|| {
            state.set_sealed(
                IDENTITY,
                &seal_at_rest(&keys.key, IDENTITY.as_bytes(), &keys.identity.to_bytes())?,
            )?;
            if let Some(k) = &keys.account_key {
                state.set_sealed(
                    ACCOUNT_KEY,
                    &seal_at_rest(&keys.key, ACCOUNT_KEY.as_bytes(), &k.to_bytes())?,
                )?;
            }
            if let Some(p) = &keys.profile_key {
                keys.save_profile_key(state, p)?;
            }
            keys.save(state)
        })?;
        Ok(keys)
    }

    fn save_profile_key(&self, state: &State, p: &ProfileKey) -> Result<()> {
        state.set_sealed(
            PROFILE_KEY,
            &seal_at_rest(&self.key, PROFILE_KEY.as_bytes(), &p.0)?,
        )
    }

    /// A fresh identity for a new device of `account`.
    pub fn new_identity(account: AccountId, device: DeviceId) -> DeviceIdentity {
        DeviceIdentity::generate(account, device, &mut rand::rng())
    }

    pub fn load(state: &State) -> Result<Keys> {
        let key = state.at_rest_key()?;
        let open = |name: &str| -> Result<Vec<u8>> {
            let sealed = state
                .sealed(name)?
                .ok_or_else(|| ClientError::State(format!("the {name} is missing from the local state")))?;
            open_at_rest(&key, name.as_bytes(), &sealed).map_err(|_| {
                ClientError::State(format!(
                    "the {name} does not open with state.key (wrong key file, or the state was altered)"
                ))
            })
        };
        let identity = DeviceIdentity::from_bytes(&open(IDENTITY)?)?;
        let store = MlsStore::import(&open(MLS)?)?;
        let account_key = match state.sealed(ACCOUNT_KEY)? {
            None => None,
            Some(_) => {
                let seed: [u8; 32] = open(ACCOUNT_KEY)?
                    .try_into()
                    .map_err(|_| ClientError::State("the account key is malformed".into()))?;
                Some(AccountKey::from_bytes(&seed))
            }
        };
        let profile_key = match state.sealed(PROFILE_KEY)? {
            Some(_) => {
                Some(ProfileKey(open(PROFILE_KEY)?.try_into().map_err(|_| {
                    ClientError::State("the profile key is malformed".into())
                })?))
            }
            None => None,
        };
        let mut keys = Keys {
            identity,
            store,
            account_key,
            profile_key,
            key,
        };
        // A home from before profile keys: an approved device makes one (and uploads its token).
        if keys.profile_key.is_none() && keys.account_key.is_some() {
            let p = ProfileKey::generate(&mut rand::rng());
            keys.save_profile_key(state, &p)?;
            keys.profile_key = Some(p);
        }
        Ok(keys)
    }

    /// Seal and write the MLS state (inside the caller's transaction, if one is open).
    pub fn save(&self, state: &State) -> Result<()> {
        self.save_exported(state, &self.store.export()?)
    }

    /// Seal and write `exported`, an [`MlsStore::export`] of the current state.
    pub fn save_exported(&self, state: &State, exported: &[u8]) -> Result<()> {
        let blob = seal_at_rest(&self.key, MLS.as_bytes(), exported)?;
        state.set_sealed(MLS, &blob)
    }

    /// Put the MLS state back to `exported` (an earlier [`MlsStore::export`]): after a step
    /// whose OpenMLS writes must not count, since they are not transactional.
    pub fn restore(&mut self, exported: &[u8]) -> Result<()> {
        self.store = MlsStore::import(exported)?;
        Ok(())
    }
}
