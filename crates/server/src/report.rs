//! Abuse reports with message franking (`sirr_crypto::franking`): a recipient reveals messages
//! an account sent it, and the server counts those it can verify.
//!
//! A revealed message is **verified** only if it proves that the reported account sent that
//! content to the reporting device:
//! - this server's franking tag matches the commitment, message id and time, the reporting
//!   device (so only the device the server delivered it to can report it), and, for an
//!   identified send, the reported account's device this server authenticated as its sender;
//! - the commitment opens to the revealed plaintext and key for the reported account;
//! - for a sealed send (the server never knew who sent it), the sender device's signature over
//!   the commitment holds under the key the reported account's signed device list gives for
//!   that device;
//! - the server accepted it within `abuse.report_window_days`.
//!
//! Each verified message counts **once**, however often it appears in one report or across
//! reports (by anyone): its commitment's keyed hash is recorded, with its ledger entry, in one
//! store transaction, and kept until the message leaves the report window. Deciding is pure
//! ([`verify`]); the one effect is [`sirr_store::Store::record_reports`].

use std::collections::BTreeMap;

use sirr_crypto::DeviceList;
use sirr_proto::{AccountId, DeviceAddress, ErrorCode, ReportedMessage, Response};
use sirr_store::VerifiedReport;

use crate::keys::{ServerKey, hashes_match};
use crate::limits::IpKey;
use crate::service::{Answer, Authed, Service, err, now_ms};

/// Most messages one report may reveal.
pub const MAX_REPORTED: usize = 50;
/// How far ahead of the server's clock a tagged time may be (a clock stepped back).
const CLOCK_SKEW_MS: u64 = 60_000;

/// Whether `m`, revealed by device `reporter`, proves that `peer` sent it that content.
/// `peer_devices` is `peer`'s signed device list as this server holds it (needed for sealed
/// sends only). Pure: every check, no effect.
pub fn verify(
    key: &ServerKey,
    reporter: DeviceAddress,
    peer: AccountId,
    peer_devices: Option<&DeviceList>,
    now_ms: u64,
    window_ms: u64,
    m: &ReportedMessage,
) -> bool {
    if m.server_ts.saturating_add(window_ms) < now_ms || m.server_ts > now_ms.saturating_add(CLOCK_SKEW_MS) {
        return false;
    }
    let from = (!m.sealed).then_some(DeviceAddress {
        account: peer,
        device: m.sender_device,
    });
    let c = &m.franking.commitment;
    let tag = key.franking_tag(c, &m.message_id, m.server_ts, from, reporter);
    if !hashes_match(&tag, &m.franking.server_tag)
        || !sirr_crypto::franking::opens(c, &m.franking_key, peer, &m.plaintext)
    {
        return false;
    }
    if m.sealed {
        let Some(device_key) = peer_devices.and_then(|l| l.key_of(m.sender_device)) else {
            return false;
        };
        return sirr_crypto::franking::signed_by(&device_key, c, m.conversation, &m.signature);
    }
    true
}

impl Service {
    /// `Report`: the revealed messages are checked ([`verify`]); each verified message not
    /// counted before is recorded in the *sender's* disclosure ledger (a recipient showed it
    /// to the operator), and the engine hears whether the report verified anything new.
    /// Answers how many messages counted.
    pub async fn report(&self, me: Authed, peer: AccountId, messages: Vec<ReportedMessage>) -> Answer {
        if messages.is_empty() || messages.len() > MAX_REPORTED {
            return Err(err(
                ErrorCode::BadRequest,
                format!("a report names 1 to {MAX_REPORTED} messages"),
            ));
        }
        if peer == me.address.account {
            return Err(err(ErrorCode::BadRequest, "an account cannot report itself"));
        }
        self.limits
            .report
            .check(&me.address.account)
            .map_err(|r| self.rate_limited("reports", r))?;
        self.limits
            .report_per_ip
            .check(&IpKey::from(me.ip))
            .map_err(|r| self.rate_limited("reports from this address", r))?;
        // Only accounts that exist reach the abuse engine (it keeps state per account named).
        self.existing_peer(me, peer).await?;
        let peer_devices = if messages.iter().any(|m| m.sealed) {
            self.store
                .device_list(peer)
                .await
                .map_err(|e| self.store_error(e))?
                .and_then(|bytes| sirr_crypto::verify_device_list(&bytes, peer, None).ok())
        } else {
            None
        };
        let now = now_ms();
        let window_ms = u64::from(self.config.abuse.report_window_days) * 86_400_000;
        // One entry per commitment: a message repeated within the report counts once.
        let mut verified: BTreeMap<[u8; 32], VerifiedReport> = BTreeMap::new();
        for m in &messages {
            if verify(
                &self.key,
                me.address,
                peer,
                peer_devices.as_ref(),
                now,
                window_ms,
                m,
            ) {
                let hash = self.key.reported_hash(&m.franking.commitment);
                verified.entry(hash).or_insert_with(|| VerifiedReport {
                    hash,
                    expires_at: m.server_ts.saturating_add(window_ms),
                    what: format!(
                        "a message you sent (id {}, accepted at {} ms) was reported for abuse by a recipient, who revealed its content to the operator",
                        m.message_id, m.server_ts
                    ),
                });
            }
        }
        let counted = if verified.is_empty() {
            0
        } else {
            self.store
                .record_reports(
                    peer,
                    now,
                    "operator (abuse report)".into(),
                    verified.into_values().collect(),
                )
                .await
                .map_err(|e| self.store_error(e))?
        };
        let decisions = self.abuse.observe(sirr_abuse::Event::Report {
            t: now,
            account: crate::abuse::name(me.address.account),
            peer: crate::abuse::name(peer),
            verified: counted > 0,
        });
        self.enforce(decisions);
        Ok(Response::Reported { verified: counted })
    }

    /// Forget reported-message hashes whose report window has passed (housekeeping).
    pub async fn purge_reports(&self) {
        match self.store.purge_reports(now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "forgot reported messages past their report window"),
            Err(e) => tracing::warn!(error = %e, "purging reported messages failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use sirr_crypto::{AccountKey, DeviceIdentity, franking};
    use sirr_proto::{ConversationId, DeviceId, Franking, MessageId};

    use super::*;

    const DAY: u64 = 86_400_000;

    struct World {
        key: ServerKey,
        _dir: tempfile::TempDir,
        victim: DeviceIdentity,
        list: DeviceList,
        reporter: DeviceAddress,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let key = ServerKey::load_or_create(dir.path()).unwrap();
        let victim = DeviceIdentity::generate(AccountId([1; 16]), DeviceId(1), &mut rand::rng());
        let account_key = AccountKey::generate(&mut rand::rng());
        let signed = account_key
            .sign_device_list(
                victim.account(),
                1,
                &[(DeviceId(1), victim.public().signature_key)],
            )
            .unwrap();
        let list = sirr_crypto::verify_device_list(&signed, victim.account(), None).unwrap();
        World {
            key,
            _dir: dir,
            victim,
            list,
            reporter: DeviceAddress {
                account: AccountId([2; 16]),
                device: DeviceId(1),
            },
        }
    }

    /// A message as the victim's device really sent it to the reporter.
    fn genuine(w: &World, sealed: bool, now: u64) -> ReportedMessage {
        let k = franking::franking_key(&mut rand::rng());
        let plaintext = b"padded content".to_vec();
        let conversation = ConversationId([9; 16]);
        let commitment = franking::commit(&k, w.victim.account(), &plaintext);
        let message_id = MessageId([5; 16]);
        let from = (!sealed).then_some(w.victim.address());
        ReportedMessage {
            message_id,
            server_ts: now,
            plaintext,
            franking_key: k,
            franking: Franking {
                commitment,
                server_tag: w
                    .key
                    .franking_tag(&commitment, &message_id, now, from, w.reporter),
            },
            sender_device: DeviceId(1),
            sealed,
            conversation,
            signature: franking::sign(&w.victim, &commitment, conversation),
        }
    }

    #[test]
    fn genuine_messages_verify_and_every_part_is_checked() {
        let w = world();
        let now = 1_000 * DAY;
        let ok = |m: &ReportedMessage, by: DeviceAddress| {
            verify(&w.key, by, w.victim.account(), Some(&w.list), now, 90 * DAY, m)
        };
        for sealed in [false, true] {
            let m = genuine(&w, sealed, now);
            assert!(ok(&m, w.reporter), "genuine (sealed: {sealed})");
            let other_device = DeviceAddress {
                device: DeviceId(2),
                ..w.reporter
            };
            assert!(!ok(&m, other_device), "another recipient (sealed: {sealed})");
            let mut flipped = m.clone();
            flipped.sealed = !sealed;
            assert!(
                !ok(&flipped, w.reporter),
                "the other kind of tag (sealed: {sealed})"
            );
            let mut text = m.clone();
            text.plaintext[0] ^= 1;
            assert!(!ok(&text, w.reporter), "another text (sealed: {sealed})");
            let mut device = m.clone();
            device.sender_device = DeviceId(2);
            assert!(
                !ok(&device, w.reporter),
                "another sending device (sealed: {sealed})"
            );
            assert!(
                !verify(
                    &w.key,
                    w.reporter,
                    w.victim.account(),
                    Some(&w.list),
                    now + 91 * DAY,
                    90 * DAY,
                    &m
                ),
                "too old (sealed: {sealed})"
            );
        }
        let m = genuine(&w, true, now);
        let mut sig = m.clone();
        sig.signature[0] ^= 1;
        assert!(
            !ok(&sig, w.reporter),
            "a sealed message needs its sender's signature"
        );
        let mut conv = m.clone();
        conv.conversation = ConversationId([8; 16]);
        assert!(!ok(&conv, w.reporter), "the signature covers the conversation");
        assert!(
            !verify(&w.key, w.reporter, w.victim.account(), None, now, 90 * DAY, &m),
            "no device list, no sealed verification"
        );
    }

    /// The forgery from the security review: a message the attacker sent itself, with a
    /// commitment naming the victim.
    #[test]
    fn a_commitment_naming_someone_else_does_not_verify() {
        let w = world();
        let now = 1_000 * DAY;
        let attacker = DeviceIdentity::generate(w.reporter.account, DeviceId(2), &mut rand::rng());
        let k = [3; 32];
        let plaintext = b"forged".to_vec();
        let commitment = franking::commit(&k, w.victim.account(), &plaintext);
        let message_id = MessageId([6; 16]);
        let conversation = ConversationId([9; 16]);
        for sealed in [false, true] {
            let from = (!sealed).then_some(attacker.address());
            let m = ReportedMessage {
                message_id,
                server_ts: now,
                plaintext: plaintext.clone(),
                franking_key: k,
                franking: Franking {
                    commitment,
                    server_tag: w
                        .key
                        .franking_tag(&commitment, &message_id, now, from, w.reporter),
                },
                sender_device: DeviceId(1),
                sealed,
                conversation,
                signature: franking::sign(&attacker, &commitment, conversation),
            };
            assert!(
                !verify(
                    &w.key,
                    w.reporter,
                    w.victim.account(),
                    Some(&w.list),
                    now,
                    90 * DAY,
                    &m
                ),
                "sealed: {sealed}"
            );
        }
    }
}
