//! Conversations: MLS groups whose leaves are devices.
//!
//! A [`Conversation`] wraps one OpenMLS `MlsGroup`. Its group id is the 16-byte Sirr
//! conversation id. A 1:1 chat is a group of the two accounts' devices; groups hold up to
//! [`MAX_MEMBERS`] devices.
//!
//! **Commit discipline.** Sirr's server orders the commits of a conversation: several members
//! may create a commit for the same epoch, and only the first one the server accepts counts.
//! Hence every membership change here ([`Conversation::add_members`],
//! [`Conversation::remove_members`], [`Conversation::commit_pending_proposals`]) only *stages*
//! the commit and returns its bytes. The caller uploads it and then calls
//! [`Conversation::merge_pending_commit`] if the server accepted it, or
//! [`Conversation::clear_pending_commit`] if it rejected it (then processes the winning commit
//! with [`Conversation::process_incoming`]). Merging before the server's answer would move this
//! device to an epoch no one else may ever reach: it could no longer read the group.
//!
//! **Ratchet tree.** Groups are created with the `ratchet_tree` extension, so the tree travels
//! *inside* the Welcome (encrypted with the group secrets); a joiner needs nothing else.
//!
//! **Wire format.** Application messages and proposals are always sent as `PrivateMessage`
//! (encrypted and signed, sender hidden from the server); commits as well. The server sees
//! only ciphertext, the group id, the epoch and the content type.
//!
//! All functions take the device's [`MlsStore`] (where OpenMLS keeps the state; export it after
//! each state-changing call) and, when they sign, its [`DeviceIdentity`].

use openmls::group::{
    MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, PURE_CIPHERTEXT_WIRE_FORMAT_POLICY, StagedWelcome,
};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    GroupId, LeafNodeIndex, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut, ProcessMessageError,
    ProcessedMessageContent, Proposal, SenderRatchetConfiguration, ValidationError,
};
use openmls_traits::OpenMlsProvider;
use sirr_proto::{DeviceAddress, MembershipToken};

use crate::CIPHERSUITE;
use crate::error::{CryptoError, Result};
use crate::identity::{DeviceIdentity, parse_credential};
use crate::keypackage::ValidatedKeyPackage;
use crate::storage::MlsStore;

/// Most devices one conversation may hold.
pub const MAX_MEMBERS: usize = 1024;
/// How many messages of one sender may arrive out of order within an epoch before their keys
/// are dropped. The server delivers in order per conversation, so a small window suffices.
pub const OUT_OF_ORDER_TOLERANCE: u32 = 32;
/// How far ahead of the last seen generation a sender's message may be (bounds the work an
/// attacker-chosen generation number can cause).
pub const MAX_FORWARD_DISTANCE: u32 = 2000;

/// A 16-byte conversation id (the MLS group id).
pub type ConversationId = [u8; 16];

/// A proposal received from another member, queued until someone commits it. Only proposals
/// about the sender itself are accepted (see [`Conversation::process_incoming`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProposalKind {
    /// The sender leaves: remove this device (always equal to the sender).
    Remove(DeviceAddress),
    /// The sender updates its own leaf (new keys).
    Update,
}

/// What an incoming message did. Returned by [`Conversation::process_incoming`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A message from a member; `plaintext` is exactly what the sender passed to `encrypt`.
    ApplicationMessage {
        /// The authenticated sender device.
        sender: DeviceAddress,
        /// The decrypted content.
        plaintext: Vec<u8>,
    },
    /// A commit was verified and merged: the conversation is now at `epoch`.
    CommitApplied {
        /// The new epoch.
        epoch: u64,
        /// The device that made the commit.
        committer: DeviceAddress,
        /// Devices added by this commit.
        added: Vec<DeviceAddress>,
        /// Devices removed by this commit.
        removed: Vec<DeviceAddress>,
        /// Whether this device was removed; the conversation is then inactive.
        self_removed: bool,
    },
    /// A proposal was verified and queued; it takes effect when a member commits it
    /// ([`Conversation::commit_pending_proposals`]).
    Proposal {
        /// The proposing device.
        sender: DeviceAddress,
        /// What it proposes.
        proposal: ProposalKind,
    },
    /// This was our own pending commit echoed back by the server: it is now merged.
    /// (Only for commits sent as PublicMessage; Sirr sends them encrypted, see
    /// [`Incoming::OwnMessage`].)
    OwnCommitMerged {
        /// The new epoch.
        epoch: u64,
    },
    /// A message this device sent itself, echoed back by the server. An encrypted message
    /// cannot be decrypted by its author (its sender ratchet is encryption-only), so nothing
    /// was changed: skip it. For an own *commit*, the server's explicit accept/reject answer
    /// (not this echo) decides between `merge_pending_commit` and `clear_pending_commit`.
    OwnMessage,
}

/// Output of [`Conversation::add_members`]: to be sent to the server together.
#[derive(Debug, Clone)]
pub struct AddOutput {
    /// The Commit, for the existing members (and the server's ordering).
    pub commit: Vec<u8>,
    /// The Welcome, for the new devices; it carries the ratchet tree.
    pub welcome: Vec<u8>,
}

/// One end-to-end encrypted conversation, as seen by one device.
#[derive(Debug)]
pub struct Conversation {
    group: MlsGroup,
}

fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(
            OUT_OF_ORDER_TOLERANCE,
            MAX_FORWARD_DISTANCE,
        ))
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(
            OUT_OF_ORDER_TOLERANCE,
            MAX_FORWARD_DISTANCE,
        ))
        .build()
}

/// A membership token: SHA-256 over a domain tag and an epoch authenticator, so the value the
/// server sees is not itself a key-schedule secret.
fn token_from(epoch_authenticator: &[u8]) -> MembershipToken {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"sirr membership token v1");
    h.update(epoch_authenticator);
    MembershipToken(h.finalize().into())
}

fn serialize(msg: &MlsMessageOut) -> Result<Vec<u8>> {
    msg.tls_serialize_detached().map_err(CryptoError::internal)
}

impl Conversation {
    /// Creates a conversation with this device as its only member, at epoch 0.
    pub fn create(store: &MlsStore, identity: &DeviceIdentity, id: ConversationId) -> Result<Self> {
        let group = MlsGroup::new_with_group_id(
            store,
            identity.signer(),
            &create_config(),
            GroupId::from_slice(&id),
            identity.credential_with_key(),
        )
        .map_err(|e| match e {
            openmls::group::NewGroupError::GroupAlreadyExists => {
                CryptoError::Rejected("conversation already exists in this store".into())
            }
            other => CryptoError::internal(other),
        })?;
        Ok(Self { group })
    }

    /// Loads a conversation from the store (e.g. after [`MlsStore::import`]). `Ok(None)` if the
    /// store holds no such conversation.
    pub fn load(store: &MlsStore, id: ConversationId) -> Result<Option<Self>> {
        let group =
            MlsGroup::load(store.storage(), &GroupId::from_slice(&id)).map_err(CryptoError::internal)?;
        Ok(group.map(|group| Self { group }))
    }

    /// Joins a conversation from a Welcome made for one of this store's KeyPackages. Verifies
    /// the Welcome (signatures, tree, group id length) and consumes a one-time KeyPackage.
    pub fn join(store: &MlsStore, welcome: &[u8]) -> Result<Self> {
        let msg =
            MlsMessageIn::tls_deserialize_exact(welcome).map_err(|_| CryptoError::Malformed("welcome"))?;
        let welcome = match msg.extract() {
            MlsMessageBodyIn::Welcome(w) => w,
            _ => return Err(CryptoError::UnexpectedMessage { expected: "welcome" }),
        };
        let staged = StagedWelcome::new_from_welcome(store, &join_config(), welcome, None)
            .map_err(map_welcome_error)?;
        let group = staged.into_group(store).map_err(map_welcome_error)?;
        if group.group_id().as_slice().len() != 16 {
            return Err(CryptoError::Malformed("conversation id"));
        }
        if group.members().count() > MAX_MEMBERS {
            return Err(CryptoError::Rejected("group too large".into()));
        }
        Ok(Self { group })
    }

    /// The conversation id.
    pub fn id(&self) -> ConversationId {
        let mut id = [0u8; 16];
        let gid = self.group.group_id().as_slice();
        if gid.len() == 16 {
            id.copy_from_slice(gid);
        }
        id
    }

    /// The current epoch (increases by one with every merged commit).
    pub fn epoch(&self) -> u64 {
        self.group.epoch().as_u64()
    }

    /// Whether this device is still a member (false after it was removed).
    pub fn is_active(&self) -> bool {
        self.group.is_active()
    }

    /// Whether a locally created commit waits for the server's verdict.
    pub fn has_pending_commit(&self) -> bool {
        self.group.pending_commit().is_some()
    }

    /// The member devices, in leaf order. Leaves whose credential is not a Sirr credential
    /// cannot exist (every add validates it) and are skipped.
    pub fn members(&self) -> Vec<DeviceAddress> {
        self.group
            .members()
            .filter_map(|m| parse_credential(&m.credential).ok())
            .collect()
    }

    /// The member devices with their signature keys (for safety numbers).
    pub fn member_publics(&self) -> Vec<crate::DevicePublic> {
        self.group
            .members()
            .filter_map(|m| {
                let address = parse_credential(&m.credential).ok()?;
                let signature_key: [u8; 32] = m.signature_key.as_slice().try_into().ok()?;
                Some(crate::DevicePublic {
                    account: address.account,
                    device: address.device,
                    signature_key,
                })
            })
            .collect()
    }

    /// The signature key of member device `address`: the key MLS verified its messages with
    /// (and which every add checked against its account's device list). Franking signatures
    /// are checked against it on receipt.
    pub fn signature_key_of(&self, address: DeviceAddress) -> Option<[u8; 32]> {
        self.member_publics()
            .into_iter()
            .find(|p| p.address() == address)
            .map(|p| p.signature_key)
    }

    fn leaf_of(&self, address: DeviceAddress) -> Option<LeafNodeIndex> {
        self.group
            .members()
            .find(|m| parse_credential(&m.credential).ok() == Some(address))
            .map(|m| m.index)
    }

    fn address_of(&self, leaf: LeafNodeIndex) -> Option<DeviceAddress> {
        self.group.member(leaf).and_then(|c| parse_credential(c).ok())
    }

    /// Forgets the conversation: its state and keys leave `store`. Used when the server's order
    /// made a locally created conversation lose to another member's (the winner's Welcome
    /// follows), and when the user deletes a conversation they were removed from.
    pub fn delete(mut self, store: &MlsStore) -> Result<()> {
        self.group.delete(store.storage()).map_err(CryptoError::internal)
    }

    fn ensure_active(&self) -> Result<()> {
        if self.group.is_active() {
            Ok(())
        } else {
            Err(CryptoError::NotAMember)
        }
    }

    fn ensure_no_pending(&self) -> Result<()> {
        if self.has_pending_commit() {
            Err(CryptoError::PendingCommit)
        } else {
            Ok(())
        }
    }

    /// Stages a commit adding the devices of `key_packages` and returns the Commit and Welcome
    /// bytes. Nothing is merged yet: see the module docs and [`Self::merge_pending_commit`].
    /// Refuses devices that are already members and groups beyond [`MAX_MEMBERS`].
    ///
    /// The commit is *adds-only without an UpdatePath* (RFC 9420 §12.4 makes the path optional
    /// when a commit only adds): its cost is one HPKE encryption per added device plus the
    /// key schedule, independent of how many blank nodes the tree has. With a path, adding to a
    /// freshly built 1,000-member group costs about a thousand HPKE encryptions (see the
    /// benches). The committer's own keys are refreshed by [`Self::update_keys`] instead.
    pub fn add_members(
        &mut self,
        store: &MlsStore,
        identity: &DeviceIdentity,
        key_packages: &[ValidatedKeyPackage],
    ) -> Result<AddOutput> {
        self.ensure_active()?;
        self.ensure_no_pending()?;
        if key_packages.is_empty() {
            return Err(CryptoError::Rejected("nothing to add".into()));
        }
        let current = self.members();
        if current.len() + key_packages.len() > MAX_MEMBERS {
            return Err(CryptoError::Rejected(format!(
                "a conversation holds at most {MAX_MEMBERS} devices"
            )));
        }
        for kp in key_packages {
            if current.contains(&kp.address()) {
                return Err(CryptoError::Rejected(format!(
                    "{} is already a member",
                    kp.address()
                )));
            }
        }
        let kps: Vec<_> = key_packages.iter().map(|k| k.key_package.clone()).collect();
        let (commit, welcome, _info) = self
            .group
            .add_members_without_update(store, identity.signer(), &kps)
            .map_err(|e| match e {
                openmls::group::AddMembersError::GroupStateError(s) => map_state_error(s),
                other => CryptoError::Rejected(other.to_string()),
            })?;
        Ok(AddOutput {
            commit: serialize(&commit)?,
            welcome: serialize(&welcome)?,
        })
    }

    /// Stages a commit that refreshes this device's leaf and path keys (an UpdatePath), for
    /// post-compromise security: after it is merged, secrets stolen from this device before
    /// no longer decrypt new messages. The client should call it periodically and after adds.
    /// Not merged yet, as for [`Self::add_members`]. Cost grows with the number of blank tree
    /// nodes on the copath (worst case: one HPKE encryption per member).
    pub fn update_keys(&mut self, store: &MlsStore, identity: &DeviceIdentity) -> Result<Vec<u8>> {
        self.ensure_active()?;
        self.ensure_no_pending()?;
        let bundle = self
            .group
            .self_update(
                store,
                identity.signer(),
                openmls::prelude::LeafNodeParameters::default(),
            )
            .map_err(|e| match e {
                openmls::group::SelfUpdateError::GroupStateError(s) => map_state_error(s),
                other => CryptoError::Rejected(other.to_string()),
            })?;
        serialize(bundle.commit())
    }

    /// Stages a commit removing the named devices and returns the Commit bytes (not merged
    /// yet, as for [`Self::add_members`]). Fails with [`CryptoError::UnknownMember`] if one is
    /// not a member.
    pub fn remove_members(
        &mut self,
        store: &MlsStore,
        identity: &DeviceIdentity,
        devices: &[DeviceAddress],
    ) -> Result<Vec<u8>> {
        self.ensure_active()?;
        self.ensure_no_pending()?;
        if devices.is_empty() {
            return Err(CryptoError::Rejected("nothing to remove".into()));
        }
        let leaves = devices
            .iter()
            .map(|&d| self.leaf_of(d).ok_or(CryptoError::UnknownMember(d)))
            .collect::<Result<Vec<_>>>()?;
        let (commit, _welcome, _info) = self
            .group
            .remove_members(store, identity.signer(), &leaves)
            .map_err(|e| match e {
                openmls::group::RemoveMembersError::GroupStateError(s) => map_state_error(s),
                other => CryptoError::Rejected(other.to_string()),
            })?;
        serialize(&commit)
    }

    /// Leaves the conversation: returns a Remove proposal for this device's own leaf, to send
    /// to the group. MLS does not let a member commit its own removal; another member commits
    /// it ([`Self::commit_pending_proposals`]), and this device sees `self_removed` when it
    /// processes that commit. Until then it can still read messages.
    pub fn leave(&mut self, store: &MlsStore, identity: &DeviceIdentity) -> Result<Vec<u8>> {
        self.ensure_active()?;
        self.ensure_no_pending()?;
        let proposal = self
            .group
            .leave_group(store, identity.signer())
            .map_err(|e| match e {
                openmls::group::LeaveGroupError::GroupStateError(s) => map_state_error(s),
                other => CryptoError::Rejected(other.to_string()),
            })?;
        serialize(&proposal)
    }

    /// Stages a commit of all queued proposals (e.g. another device's leave). Returns the
    /// Commit bytes and, if the proposals added devices, the Welcome. Not merged yet.
    pub fn commit_pending_proposals(
        &mut self,
        store: &MlsStore,
        identity: &DeviceIdentity,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
        self.ensure_active()?;
        self.ensure_no_pending()?;
        let (commit, welcome, _info) = self
            .group
            .commit_to_pending_proposals(store, identity.signer())
            .map_err(|e| match e {
                openmls::group::CommitToPendingProposalsError::GroupStateError(s) => map_state_error(s),
                other => CryptoError::Rejected(other.to_string()),
            })?;
        let welcome = welcome.as_ref().map(serialize).transpose()?;
        Ok((serialize(&commit)?, welcome))
    }

    /// The proof of membership in the current epoch that the server checks before it orders
    /// a commit or stores a message for this conversation (see [`MembershipToken`]). Derived
    /// from the epoch authenticator, a secret of the MLS key schedule that every member of the
    /// epoch holds and that changes with each commit: a removed device cannot compute the
    /// next one, and the token reveals nothing about the group's other secrets.
    pub fn membership_token(&self) -> MembershipToken {
        token_from(self.group.epoch_authenticator().as_slice())
    }

    /// The membership token of the epoch the pending local commit starts (to announce to the
    /// server with that commit, as its hash); `None` without a pending commit.
    pub fn pending_membership_token(&self) -> Option<MembershipToken> {
        let staged = self.group.pending_commit()?;
        staged.epoch_authenticator().map(|a| token_from(a.as_slice()))
    }

    /// Merges the pending local commit. Call it **only after the server accepted** that
    /// commit: the server decides which of several concurrent commits for an epoch wins, and
    /// merging a losing commit would strand this device in an epoch nobody else is in.
    pub fn merge_pending_commit(&mut self, store: &MlsStore) -> Result<()> {
        if !self.has_pending_commit() {
            return Err(CryptoError::NoPendingCommit);
        }
        self.group
            .merge_pending_commit(store)
            .map_err(CryptoError::internal)
    }

    /// Discards the pending local commit after the server rejected it. The group stays at its
    /// epoch; the caller then processes the commit that won.
    pub fn clear_pending_commit(&mut self, store: &MlsStore) -> Result<()> {
        self.group
            .clear_pending_commit(store.storage())
            .map_err(CryptoError::internal)
    }

    /// Encrypts an application message for the current epoch. `plaintext` should already be
    /// padded ([`Self::encrypt_padded`] does it). Fails with [`CryptoError::PendingCommit`]
    /// while a local commit waits for the server (a message sent in the old epoch could be
    /// unreadable for members who merge the commit first).
    pub fn encrypt(
        &mut self,
        store: &MlsStore,
        identity: &DeviceIdentity,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        self.ensure_active()?;
        self.ensure_no_pending()?;
        let msg = self
            .group
            .create_message(store, identity.signer(), plaintext)
            .map_err(|e| match e {
                openmls::prelude::CreateMessageError::GroupStateError(s) => map_state_error(s),
                other => CryptoError::internal(other),
            })?;
        serialize(&msg)
    }

    /// [`Self::encrypt`] of `sirr_proto::padding::pad(content)`, so that the ciphertext length
    /// reveals only a size bucket.
    pub fn encrypt_padded(
        &mut self,
        store: &MlsStore,
        identity: &DeviceIdentity,
        content: &[u8],
    ) -> Result<Vec<u8>> {
        self.encrypt(store, identity, &sirr_proto::padding::pad(content))
    }

    /// Removes the padding of a plaintext from [`Incoming::ApplicationMessage`].
    pub fn unpad(plaintext: &[u8]) -> Result<&[u8]> {
        Ok(sirr_proto::padding::unpad(plaintext)?)
    }

    /// Processes one message from the server for this conversation: verifies and decrypts an
    /// application message, verifies and **merges** a commit (the server's order is final),
    /// or verifies and queues a proposal (only a member's own leave or key update; any other
    /// standalone proposal is refused with [`CryptoError::Rejected`]). Never panics on
    /// arbitrary bytes; every failure is a typed [`CryptoError`] and leaves the conversation
    /// usable for the next message.
    pub fn process_incoming(&mut self, store: &MlsStore, bytes: &[u8]) -> Result<Incoming> {
        let msg =
            MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| CryptoError::Malformed("MLS message"))?;
        let protocol = msg
            .try_into_protocol_message()
            .map_err(|_| CryptoError::UnexpectedMessage {
                expected: "private or public message",
            })?;
        if protocol.group_id().as_slice() != self.group.group_id().as_slice() {
            return Err(CryptoError::WrongGroup);
        }
        self.ensure_active()?;
        let processed = self
            .group
            .process_message(store, protocol)
            .map_err(map_process_error)?;
        let sender = parse_credential(processed.credential())?;
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => Ok(Incoming::ApplicationMessage {
                sender,
                plaintext: app.into_bytes(),
            }),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let added = staged
                    .add_proposals()
                    .map(|p| parse_credential(p.add_proposal().key_package().leaf_node().credential()))
                    .collect::<Result<Vec<_>>>()?;
                let removed = staged
                    .remove_proposals()
                    .filter_map(|p| self.address_of(p.remove_proposal().removed()))
                    .collect::<Vec<_>>();
                if self.members().len() + added.len() > MAX_MEMBERS + removed.len() {
                    return Err(CryptoError::Rejected("group too large".into()));
                }
                let self_removed = staged.self_removed();
                self.group
                    .merge_staged_commit(store, *staged)
                    .map_err(CryptoError::internal)?;
                Ok(Incoming::CommitApplied {
                    epoch: self.epoch(),
                    committer: sender,
                    added,
                    removed,
                    self_removed,
                })
            }
            ProcessedMessageContent::ProposalMessage(queued) => {
                // Sirr's policy: a standalone proposal may only concern its sender (a leave or
                // a key update). Adding or removing *others* must be a commit, so that the
                // server's ordering and the committer's signature cover it.
                let proposal = match queued.proposal() {
                    Proposal::Remove(rm) if Some(sender) == self.address_of(rm.removed()) => {
                        ProposalKind::Remove(sender)
                    }
                    Proposal::Update(_) => ProposalKind::Update,
                    _ => {
                        return Err(CryptoError::Rejected(
                            "only self-concerning proposals are accepted".into(),
                        ));
                    }
                };
                self.group
                    .store_pending_proposal(store.storage(), *queued)
                    .map_err(CryptoError::internal)?;
                Ok(Incoming::Proposal { sender, proposal })
            }
            ProcessedMessageContent::OwnPendingCommit => {
                self.group
                    .merge_pending_commit(store)
                    .map_err(CryptoError::internal)?;
                Ok(Incoming::OwnCommitMerged { epoch: self.epoch() })
            }
            ProcessedMessageContent::OwnPrivateMessage => Ok(Incoming::OwnMessage),
            _ => Err(CryptoError::UnexpectedMessage {
                expected: "member message",
            }),
        }
    }
}

fn map_state_error(e: openmls::group::MlsGroupStateError) -> CryptoError {
    use openmls::group::MlsGroupStateError as S;
    match e {
        S::UseAfterEviction => CryptoError::NotAMember,
        S::PendingCommit => CryptoError::PendingCommit,
        S::NoPendingCommit => CryptoError::NoPendingCommit,
        other => CryptoError::internal(other),
    }
}

fn map_validation_error(e: ValidationError) -> CryptoError {
    use openmls::framing::errors::{MessageDecryptionError as D, SecretTreeError as T};
    match e {
        ValidationError::WrongEpoch | ValidationError::NoPastEpochData => CryptoError::WrongEpoch,
        ValidationError::WrongGroupId => CryptoError::WrongGroup,
        ValidationError::InvalidSignature
        | ValidationError::InvalidMembershipTag
        | ValidationError::MissingMembershipTag
        | ValidationError::InvalidLeafNodeSignature => CryptoError::InvalidSignature,
        ValidationError::UnknownMember => CryptoError::UnknownSender,
        ValidationError::UnableToDecrypt(D::SecretTreeError(T::SecretReuseError))
        | ValidationError::UnableToDecrypt(D::SecretTreeError(T::TooDistantInThePast)) => CryptoError::Replay,
        ValidationError::UnableToDecrypt(D::MalformedContent) => CryptoError::Malformed("decrypted content"),
        ValidationError::UnableToDecrypt(_) => CryptoError::DecryptionFailed,
        ValidationError::LibraryError(e) => CryptoError::internal(e),
        other => CryptoError::Rejected(other.to_string()),
    }
}

fn map_process_error<E: std::fmt::Display>(e: ProcessMessageError<E>) -> CryptoError {
    match e {
        ProcessMessageError::ValidationError(v) => map_validation_error(v),
        ProcessMessageError::GroupStateError(s) => map_state_error(s),
        ProcessMessageError::InvalidCommit(c) => match c {
            openmls::group::StageCommitError::OwnCommitMismatch => {
                CryptoError::InvalidCommit("own commit that is not the pending one".into())
            }
            other => CryptoError::InvalidCommit(other.to_string()),
        },
        ProcessMessageError::StorageError(e) => CryptoError::internal(e),
        ProcessMessageError::LibraryError(e) => CryptoError::internal(e),
        other => CryptoError::Rejected(other.to_string()),
    }
}

fn map_welcome_error<E: std::fmt::Display>(e: openmls::group::WelcomeError<E>) -> CryptoError {
    use openmls::group::WelcomeError as W;
    match e {
        W::NoMatchingKeyPackage | W::NoMatchingEncryptionKey => CryptoError::NoMatchingKeyPackage,
        W::UnsupportedCapability | W::CiphersuiteMismatch => CryptoError::UnsupportedCiphersuite,
        W::LibraryError(e) => CryptoError::internal(e),
        W::StorageError(e) => CryptoError::internal(e),
        other => CryptoError::Rejected(format!("welcome: {other}")),
    }
}
