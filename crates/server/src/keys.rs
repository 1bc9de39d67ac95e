//! The server's own secret and the keyed hashes built from it.
//!
//! One 256-bit key, created at first start in `DATA/server.key` (mode 0600). It keys the hashes
//! of phone numbers and verification codes, so the database alone reveals neither. Losing the
//! key makes existing phone numbers unfindable: back it up with the database.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sirr_proto::{AccountId, DeviceAddress, MessageId, Phone, Secret};
use sirr_store::PhoneKey;
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(<redacted>)")
    }
}

impl ServerKey {
    /// Load `dir/server.key`, creating it with fresh randomness if absent.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("server.key");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| std::io::Error::other(format!("{} is not a 32-byte key", path.display())))?;
                Ok(Self(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&path)?;
                f.write_all(&key)?;
                f.sync_all()?;
                Ok(Self(key))
            }
            Err(e) => Err(e),
        }
    }

    fn mac(&self, domain: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(domain);
        for p in parts {
            m.update(&(p.len() as u32).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    pub fn phone_key(&self, phone: &Phone) -> PhoneKey {
        PhoneKey(self.mac(b"sirr phone v1", &[phone.as_str().as_bytes()]))
    }

    pub fn code_hash(&self, phone: &Phone, code: &str) -> [u8; 32] {
        self.mac(b"sirr code v1", &[phone.as_str().as_bytes(), code.as_bytes()])
    }

    /// What logs name an account by: a keyed hash, cut to 64 bits. An operator can still follow
    /// one account through the log (and, holding the server key, find the lines of an account
    /// whose id they know), but the log itself holds no account id, so a deleted account's id
    /// does not survive in it.
    pub fn log_tag(&self, account: &AccountId) -> String {
        hex::encode(&self.mac(b"sirr log tag v1", &[&account.0])[..8])
    }

    /// The server's franking tag: binds a sender's commitment to the message id and the time
    /// at which this server accepted it, to the device it is delivered to, and, for an
    /// identified send, to the sending device this server authenticated (`from`; `None` for a
    /// sealed send, whose sender it never knew). Only this server can make one, so a report
    /// that carries it proves the message passed through here from `from` to `to`.
    pub fn franking_tag(
        &self,
        commitment: &[u8; 32],
        message_id: &MessageId,
        server_ts: u64,
        from: Option<DeviceAddress>,
        to: DeviceAddress,
    ) -> [u8; 32] {
        let address = |a: DeviceAddress| {
            let mut b = [0u8; 20];
            b[..16].copy_from_slice(&a.account.0);
            b[16..].copy_from_slice(&a.device.0.to_be_bytes());
            b
        };
        // The length prefix of each part tells a sealed tag (empty sender) from an identified one.
        let sender = from.map(address);
        self.mac(
            b"sirr franking tag v2",
            &[
                commitment,
                &message_id.0,
                &server_ts.to_be_bytes(),
                sender.as_ref().map_or(&[][..], |s| &s[..]),
                &address(to),
            ],
        )
    }

    /// What the server keeps of a verified report's commitment so the message counts once: a
    /// keyed hash, which without the key cannot be matched to a queued message's commitment.
    pub fn reported_hash(&self, commitment: &[u8; 32]) -> [u8; 32] {
        self.mac(b"sirr reported v1", &[commitment])
    }
}

/// SHA-256 of a device secret: what the database keeps.
pub fn secret_hash(secret: &Secret) -> [u8; 32] {
    Sha256::digest(secret.0).into()
}

/// SHA-256 of a sealed-sender delivery token (128 random bits: no slow hash needed), with a
/// domain tag so it can never equal a device secret's hash.
pub fn secret_hash_16(token: &[u8; 16]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sirr access key v1");
    h.update(token);
    h.finalize().into()
}

/// Constant-time equality of two hashes.
pub fn hashes_match(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

pub fn random_secret() -> Secret {
    let mut s = [0u8; 32];
    rand::rng().fill_bytes(&mut s);
    Secret(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServerKey::load_or_create(dir.path()).unwrap();
        let b = ServerKey::load_or_create(dir.path()).unwrap();
        let p = Phone::parse("+15550000001").unwrap();
        assert_eq!(a.phone_key(&p), b.phone_key(&p));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("server.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        let c = ServerKey::load_or_create(other.path()).unwrap();
        assert_ne!(a.phone_key(&p), c.phone_key(&p), "keys are random per server");
        assert_ne!(a.code_hash(&p, "123456"), a.code_hash(&p, "123457"));
    }

    #[test]
    fn a_franking_tag_names_sender_and_recipient() {
        let dir = tempfile::tempdir().unwrap();
        let k = ServerKey::load_or_create(dir.path()).unwrap();
        let dev = |a: u8, d: u32| DeviceAddress {
            account: sirr_proto::AccountId([a; 16]),
            device: sirr_proto::DeviceId(d),
        };
        let (c, id) = ([1; 32], MessageId([2; 16]));
        let tag = k.franking_tag(&c, &id, 5, Some(dev(1, 1)), dev(2, 1));
        assert_ne!(
            tag,
            k.franking_tag(&c, &id, 5, Some(dev(3, 1)), dev(2, 1)),
            "another sender"
        );
        assert_ne!(
            tag,
            k.franking_tag(&c, &id, 5, Some(dev(1, 2)), dev(2, 1)),
            "another sending device"
        );
        assert_ne!(
            tag,
            k.franking_tag(&c, &id, 5, Some(dev(1, 1)), dev(2, 2)),
            "another recipient"
        );
        assert_ne!(tag, k.franking_tag(&c, &id, 5, None, dev(2, 1)), "sealed");
        assert_ne!(
            tag,
            k.franking_tag(&c, &id, 6, Some(dev(1, 1)), dev(2, 1)),
            "another time"
        );
    }
}
