//! This device's secrets: its MLS identity and the MLS state, sealed at rest in the store's
//! `Sealed` table with the at-rest key (`state.key`).

use sirr_crypto::seal::{open_at_rest, seal_at_rest};
use sirr_crypto::{AccountKey, DeviceIdentity, MlsStore, ProfileKey};
use sirr_proto::{AccountId, DeviceId};

use crate::error::{ClientError, Result};
use crate::state::State;
use crate::store::Batch;

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
    pub async fn create(
        state: &State,
        identity: DeviceIdentity,
        account_key: Option<AccountKey>,
        profile_key: Option<ProfileKey>,
    ) -> Result<Keys> {
        let key = state.at_rest_key().await?;
        let keys = Keys {
            identity,
            store: MlsStore::new(),
            account_key,
            profile_key,
            key,
        };
        // One commit: a home never holds an identity without its MLS state.
        let mut b = Batch::new();
        state.stage_sealed(
            &mut b,
            IDENTITY,
            &seal_at_rest(&keys.key, IDENTITY.as_bytes(), &keys.identity.to_bytes())?,
        );
        if let Some(k) = &keys.account_key {
            state.stage_sealed(
                &mut b,
                ACCOUNT_KEY,
                &seal_at_rest(&keys.key, ACCOUNT_KEY.as_bytes(), &k.to_bytes())?,
            );
        }
        if let Some(p) = &keys.profile_key {
            keys.stage_profile_key(state, &mut b, p)?;
        }
        keys.stage_exported(state, &mut b, &keys.store.export()?)?;
        state.commit(b).await?;
        Ok(keys)
    }

    fn stage_profile_key(&self, state: &State, b: &mut Batch, p: &ProfileKey) -> Result<()> {
        state.stage_sealed(
            b,
            PROFILE_KEY,
            &seal_at_rest(&self.key, PROFILE_KEY.as_bytes(), &p.0)?,
        );
        Ok(())
    }

    /// A fresh identity for a new device of `account`.
    pub fn new_identity(account: AccountId, device: DeviceId) -> DeviceIdentity {
        DeviceIdentity::generate(account, device, &mut rand::rng())
    }

    pub async fn load(state: &State) -> Result<Keys> {
        let key = state.at_rest_key().await?;
        let open = |name: &str, sealed: Vec<u8>| -> Result<Vec<u8>> {
            open_at_rest(&key, name.as_bytes(), &sealed).map_err(|_| {
                ClientError::State(format!(
                    "the {name} does not open with state.key (wrong key file, or the state was altered)"
                ))
            })
        };
        let required = |name: &'static str, sealed: Option<Vec<u8>>| -> Result<Vec<u8>> {
            let sealed = sealed
                .ok_or_else(|| ClientError::State(format!("the {name} is missing from the local state")))?;
            open(name, sealed)
        };
        let identity = DeviceIdentity::from_bytes(&required(IDENTITY, state.sealed(IDENTITY).await?)?)?;
        let store = MlsStore::import(&required(MLS, state.sealed(MLS).await?)?)?;
        let account_key = match state.sealed(ACCOUNT_KEY).await? {
            None => None,
            Some(sealed) => {
                let seed: [u8; 32] = open(ACCOUNT_KEY, sealed)?
                    .try_into()
                    .map_err(|_| ClientError::State("the account key is malformed".into()))?;
                Some(AccountKey::from_bytes(&seed))
            }
        };
        let profile_key = match state.sealed(PROFILE_KEY).await? {
            Some(sealed) => {
                Some(ProfileKey(open(PROFILE_KEY, sealed)?.try_into().map_err(
                    |_| ClientError::State("the profile key is malformed".into()),
                )?))
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
            let mut b = Batch::new();
            keys.stage_profile_key(state, &mut b, &p)?;
            state.commit(b).await?;
            keys.profile_key = Some(p);
        }
        Ok(keys)
    }

    /// Seal and write the MLS state, in a commit of its own.
    pub async fn save(&self, state: &State) -> Result<()> {
        let mut b = Batch::new();
        self.stage_exported(state, &mut b, &self.store.export()?)?;
        state.commit(b).await
    }

    /// Add to `b` the sealed `exported`, an [`MlsStore::export`] of the current state.
    pub fn stage_exported(&self, state: &State, b: &mut Batch, exported: &[u8]) -> Result<()> {
        let blob = seal_at_rest(&self.key, MLS.as_bytes(), exported)?;
        state.stage_sealed(b, MLS, &blob);
        Ok(())
    }

    /// Put the MLS state back to `exported` (an earlier [`MlsStore::export`]): after a step
    /// whose OpenMLS writes must not count, since they are not transactional.
    pub fn restore(&mut self, exported: &[u8]) -> Result<()> {
        self.store = MlsStore::import(exported)?;
        Ok(())
    }
}
