//! Which devices an account approved: the server reads the account's signed device list.
//!
//! Device lists are signed by the account key, which only devices the account approved hold
//! (the first device made it; a linked device receives it sealed from an approver). So a
//! device the list names was approved by the account, and a device it does not name (one
//! created by a link whose approver has not listed it yet, or anything registered around
//! the list) was not. Only approved devices may change other devices' state: remove another
//! device, delete the account, approve a link, set the registration lock.
//!
//! The server pins the account key like a client does: the first list stored for an account
//! (or for an identity started anew, see `reglock.rs`) sets it; a later list must verify under
//! the same key, so a device that is not approved cannot publish a list naming itself.

use sirr_crypto::{CryptoError, verify_device_list};
use sirr_proto::{AccountId, ErrorBody, ErrorCode};

use crate::service::{Authed, Service, err};

/// Whether `device` is named by `list` (a stored list of `account`). `None` when no list was
/// ever published, i.e. the account's identity is new and its first device has not yet signed.
pub fn approved_by(
    list: Option<&[u8]>,
    account: AccountId,
    device: sirr_proto::DeviceId,
) -> Result<Option<bool>, CryptoError> {
    let Some(bytes) = list else {
        return Ok(None);
    };
    Ok(Some(
        verify_device_list(bytes, account, None)?.key_of(device).is_some(),
    ))
}

impl Service {
    /// Refuse `me` unless its account's signed device list names it. An identity with no list
    /// yet (its first device, before it first signs) has nothing approved to protect.
    pub(crate) async fn require_approved(&self, me: Authed, what: &str) -> Result<(), ErrorBody> {
        let list = self
            .store
            .device_list(me.address.account)
            .await
            .map_err(|e| self.store_error(e))?;
        match approved_by(list.as_deref(), me.address.account, me.address.device) {
            Ok(None | Some(true)) => Ok(()),
            Ok(Some(false)) => Err(err(
                ErrorCode::NotApproved,
                format!(
                    "this device is not on the account's signed device list, so it cannot {what}; approve it from a device that is"
                ),
            )),
            Err(e) => {
                tracing::error!(account = %self.key.log_tag(&me.address.account), error = %e, "stored device list does not verify");
                Err(err(ErrorCode::Internal, "internal error; try again"))
            }
        }
    }

    /// Check a device list `me` publishes: it must verify, be this account's, and be signed
    /// by the key of the list stored before (if any).
    pub(crate) async fn check_published_list(&self, me: Authed, list: &[u8]) -> Result<(), ErrorBody> {
        let account = me.address.account;
        let stored = self
            .store
            .device_list(account)
            .await
            .map_err(|e| self.store_error(e))?;
        let pinned = match stored.as_deref().map(|s| verify_device_list(s, account, None)) {
            None => None,
            Some(Ok(l)) => Some(l.account_key),
            Some(Err(e)) => {
                tracing::error!(account = %self.key.log_tag(&account), error = %e, "stored device list does not verify");
                return Err(err(ErrorCode::Internal, "internal error; try again"));
            }
        };
        match verify_device_list(list, account, pinned) {
            Ok(_) => Ok(()),
            Err(CryptoError::AccountKeyChanged) => Err(err(
                ErrorCode::NotApproved,
                "this device list is not signed by the account's key",
            )),
            Err(e) => Err(err(
                ErrorCode::BadRequest,
                format!("the device list does not verify: {e}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use sirr_crypto::AccountKey;
    use sirr_proto::DeviceId;

    use super::*;

    #[test]
    fn only_listed_devices_are_approved() {
        let account = AccountId([4; 16]);
        let key = AccountKey::generate(&mut rand::rng());
        let list = key
            .sign_device_list(account, 1, &[(DeviceId(1), [1; 32])])
            .unwrap();
        assert_eq!(approved_by(None, account, DeviceId(2)).unwrap(), None);
        assert_eq!(
            approved_by(Some(&list), account, DeviceId(1)).unwrap(),
            Some(true)
        );
        assert_eq!(
            approved_by(Some(&list), account, DeviceId(2)).unwrap(),
            Some(false)
        );
        assert!(approved_by(Some(&list), AccountId([5; 16]), DeviceId(1)).is_err());
    }
}
