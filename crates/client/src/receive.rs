//! Filing pushed envelopes: decide, then apply, one envelope at a time.
//!
//! Each envelope goes through two steps. [`Client::classify`] decrypts it and decides what it
//! changes, collecting every change into [`Changes`] without writing to the store; then
//! [`Client::apply`] writes all of them — content, contacts, conversation rows, the sealed MLS
//! state and the envelope's seen mark — as one [`Batch`] in one store commit. OpenMLS writes its state
//! into the in-memory store as it goes, and those writes are not transactional, so the store is
//! exported after every applied envelope and, if a later envelope fails before its changes are
//! applied (a rate-limited or timed-out lookup, a broken connection), the store is reloaded
//! from that export: an envelope is either filed with the MLS state it produced, or not at all
//! and still decryptable when it is delivered again. Only the envelopes filed are acknowledged.

use sirr_proto::{AccountId, DeviceId, Envelope, MessageId, Phone};

use crate::Client;
use crate::conversations::Followups;
use crate::error::Result;
use crate::state::{self, ConversationRow, StoredMessage};
use crate::store::Batch;

/// Everything one envelope changes locally, decided by [`Client::classify`] and written by
/// [`Client::apply`] in one store commit.
#[derive(Default)]
pub(crate) struct Changes {
    /// Messages and notices to store.
    pub rows: Vec<(MessageId, StoredMessage, [u8; 16])>,
    /// Contacts learnt (from the directory, or from a group's member list).
    pub contacts: Vec<(Phone, AccountId, Vec<DeviceId>)>,
    /// Profile keys the sender's content carried.
    pub profile_keys: Vec<(AccountId, [u8; 32])>,
    /// Franked messages kept so they can be reported.
    pub franked: Vec<state::Franked>,
    /// Conversation rows to write (joined, renamed, left).
    pub conversations: Vec<ConversationRow>,
    /// Disappearing-message timers set.
    pub timers: Vec<(sirr_proto::ConversationId, Option<u32>)>,
}

impl Client {
    /// File a batch of pushed envelopes, each in its own transaction, then acknowledge the ones
    /// filed (and the redeliveries already filed before). If one fails, the envelopes before it
    /// stay filed and acknowledged, the MLS state is put back to what they left, and the error
    /// is returned: the failed envelope and the rest are delivered again.
    pub(crate) async fn accept(&mut self, batch: Vec<Envelope>) -> Result<usize> {
        let mut followups = Followups::default();
        let mut done = Vec::with_capacity(batch.len());
        let mut new = 0;
        let mut failure = None;
        // The MLS state as the last filed envelope left it.
        let mut filed = self.keys.store.export()?;
        for env in batch {
            // A redelivery after a crash between our commit and the ack: already filed.
            if self.state.seen(&env.message_id).await? {
                done.push(env.seq);
                continue;
            }
            let mut ch = Changes::default();
            let mut wants = Followups::default();
            let outcome = match self.classify(&env, &mut ch, &mut wants).await {
                Ok(()) => self.apply(&env.message_id, &ch).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok((n, mls)) => {
                    new += n;
                    filed = mls;
                    done.push(env.seq);
                    followups.commit_proposals.extend(wants.commit_proposals);
                    followups.leave.extend(wants.leave);
                }
                Err(e) => {
                    // Undo what decrypting this envelope did to the in-memory MLS state.
                    self.keys.restore(&filed)?;
                    failure = Some(e);
                    break;
                }
            }
        }
        // Only after the local commits: a crash before this line means redelivery, not loss.
        if !done.is_empty() {
            self.conn()?.ack(done).await?;
        }
        if let Some(e) = failure {
            // What the filed envelopes asked for must not wait for their (skipped) redelivery.
            if let Err(f) = Box::pin(self.run_followups(followups)).await {
                tracing::warn!(error = %f, "could not act on received messages");
            }
            return Err(e);
        }
        Box::pin(self.run_followups(followups)).await?;
        Ok(new)
    }

    /// Write everything `ch` holds for envelope `id`, with the current MLS state and the seen
    /// mark, in one store commit. Returns how many messages were new and the MLS state written.
    async fn apply(&self, id: &MessageId, ch: &Changes) -> Result<(usize, Vec<u8>)> {
        let mls = self.keys.store.export()?;
        let mut b = Batch::new();
        self.keys.stage_exported(&self.state, &mut b, &mls)?;
        for (phone, account, devices) in &ch.contacts {
            self.state.stage_contact(&mut b, phone, *account, devices).await?;
        }
        for (account, key) in &ch.profile_keys {
            self.state.stage_profile_key(&mut b, *account, Some(*key));
        }
        for f in &ch.franked {
            self.state.stage_franking(&mut b, f).await?;
        }
        for row in &ch.conversations {
            self.state.stage_conversation(&mut b, row).await?;
        }
        for (conversation, seconds) in &ch.timers {
            self.state.stage_timer(&mut b, *conversation, *seconds);
        }
        self.state.stage_seen(&mut b, id);
        let new = self.state.stage_messages(&mut b, &ch.rows).await?;
        self.state.commit(b).await?;
        Ok((new, mls))
    }

    /// Does the phone number a message claims belong to the account the server says sent it?
    /// A directory answer is added to `contacts` (written with the envelope), not stored here.
    pub(crate) async fn sender_matches(
        &self,
        claimed: &Phone,
        account: AccountId,
        contacts: &mut Vec<(Phone, AccountId, Vec<DeviceId>)>,
    ) -> Result<bool> {
        if claimed == &self.creds.phone {
            return Ok(account == self.creds.account);
        }
        if let Some((a, _)) = self.state.contact(claimed).await?
            && a == account
        {
            return Ok(true);
        }
        match self.directory(claimed).await? {
            Some((a, devices)) => {
                contacts.push((claimed.clone(), a, devices));
                Ok(a == account)
            }
            None => Ok(false),
        }
    }
}
