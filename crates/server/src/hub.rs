//! The hub: which devices have a live session on this node, and the path from a committed
//! message to that session.
//!
//! The store calls [`Hub::queued`] on its writer thread as each copy joins a transaction, in
//! `seq` order and before the commit, so an online device gets its message without waiting for
//! the disk; [`Hub::committed`] then moves the *committed watermark*. The hub never blocks: each
//! session has a bounded channel, and when it is full the hub stops feeding that session, records
//! the highest `seq` it dropped and raises the session's `lagged` flag. The session then re-reads
//! its queue from the store, which holds everything once the watermark has passed what was
//! dropped (the live path is only a shortcut).
//!
//! A new session starts in the same position: anything announced before it subscribed may still
//! be uncommitted, so it counts as "dropped" up to the hub's latest announced `seq`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dashmap::DashMap;
use sirr_store::{DeviceKey, QueueListener, QueuedMessage};
use tokio::sync::{Notify, mpsc};

/// The hub's side of one session.
pub struct SessionLink {
    id: u64,
    tx: mpsc::Sender<QueuedMessage>,
    /// Set when a message could not be handed over; cleared by the session when it catches up.
    pub lagged: AtomicBool,
    /// Signalled when the session must end (replaced by a newer session, device removed).
    pub evicted: Notify,
    /// Highest `seq` this session may have missed on the live path; reading the store is only
    /// complete once the committed watermark has reached it.
    pub missed_upto: AtomicU64,
}

/// The receiving end a session keeps.
pub struct Subscription {
    pub link: Arc<SessionLink>,
    pub rx: mpsc::Receiver<QueuedMessage>,
}

#[derive(Default)]
pub struct Hub {
    sessions: DashMap<DeviceKey, Arc<SessionLink>>,
    next_id: AtomicU64,
    /// Highest `seq` announced by the store (possibly not yet committed).
    announced: AtomicU64,
    /// Highest `seq` known durable and visible to store reads.
    committed: AtomicU64,
}

impl Hub {
    /// Register a session for `device`, evicting any earlier session of the same device.
    pub fn subscribe(&self, device: DeviceKey, capacity: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let link = Arc::new(SessionLink {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            tx,
            lagged: AtomicBool::new(false),
            evicted: Notify::new(),
            missed_upto: AtomicU64::new(0),
        });
        if let Some(old) = self.sessions.insert(device, link.clone()) {
            old.evicted.notify_one();
        }
        // Read after registering: whatever was announced before is either in the channel from
        // now on or at most this `seq`, which the first read of the store must wait for.
        link.missed_upto
            .store(self.announced.load(Ordering::Acquire), Ordering::Release);
        Subscription { link, rx }
    }

    /// Remove a session's registration, unless a newer session already replaced it.
    pub fn unsubscribe(&self, device: DeviceKey, link: &SessionLink) {
        self.sessions
            .remove_if(&device, |_, current| current.id == link.id);
    }

    /// End the session of a device (e.g. it was removed).
    pub fn evict(&self, device: DeviceKey) {
        if let Some((_, link)) = self.sessions.remove(&device) {
            link.evicted.notify_one();
        }
    }

    pub fn online(&self) -> usize {
        self.sessions.len()
    }

    /// Whether every `seq` up to `upto` is durable and visible to store reads.
    pub fn is_committed(&self, upto: u64) -> bool {
        self.committed.load(Ordering::Acquire) >= upto
    }
}

impl QueueListener for Hub {
    fn queued(&self, device: DeviceKey, message: &QueuedMessage) {
        self.announced.fetch_max(message.seq, Ordering::AcqRel);
        let Some(link) = self.sessions.get(&device) else {
            return;
        };
        // Once lagged, hand over nothing until the session has caught up from the store;
        // otherwise it could see a later message before an earlier one that was dropped.
        if link.lagged.load(Ordering::Acquire) || link.tx.try_send(message.clone()).is_err() {
            link.missed_upto.fetch_max(message.seq, Ordering::AcqRel);
            link.lagged.store(true, Ordering::Release);
        }
    }

    fn committed(&self, upto_seq: u64) {
        self.committed.fetch_max(upto_seq, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sirr_proto::{AccountId, DeviceAddress, DeviceId, MessageId};

    fn msg(seq: u64) -> QueuedMessage {
        QueuedMessage {
            seq,
            message_id: MessageId([0; 16]),
            from: DeviceAddress {
                account: AccountId([0; 16]),
                device: DeviceId(1),
            },
            server_ts: 0,
            payload: Arc::from(&b"x"[..]),
        }
    }

    #[test]
    fn overflow_marks_lagged_and_stops_feeding() {
        let hub = Hub::default();
        let d = DeviceKey(1);
        let mut sub = hub.subscribe(d, 2);
        for seq in 1..=4 {
            hub.queued(d, &msg(seq));
        }
        assert!(sub.link.lagged.load(Ordering::Acquire));
        assert_eq!(sub.link.missed_upto.load(Ordering::Acquire), 4);
        assert!(!hub.is_committed(4));
        hub.committed(4);
        assert!(hub.is_committed(4));
        assert_eq!(sub.rx.try_recv().unwrap().seq, 1);
        assert_eq!(sub.rx.try_recv().unwrap().seq, 2);
        // Room again, but nothing more arrives until the session clears the flag.
        hub.queued(d, &msg(5));
        assert!(sub.rx.try_recv().is_err());
        sub.link.lagged.store(false, Ordering::Release);
        hub.queued(d, &msg(6));
        assert_eq!(sub.rx.try_recv().unwrap().seq, 6);
    }

    #[tokio::test]
    async fn a_new_session_evicts_the_old_one() {
        let hub = Hub::default();
        let d = DeviceKey(7);
        let old = hub.subscribe(d, 4);
        hub.queued(DeviceKey(99), &msg(17));
        let new = hub.subscribe(d, 4);
        assert_eq!(
            new.link.missed_upto.load(Ordering::Acquire),
            17,
            "announced before subscribing"
        );
        tokio::time::timeout(std::time::Duration::from_secs(1), old.link.evicted.notified())
            .await
            .expect("old session told to leave");
        hub.unsubscribe(d, &old.link);
        assert_eq!(
            hub.online(),
            1,
            "the old session's exit keeps the new registration"
        );
        hub.unsubscribe(d, &new.link);
        assert_eq!(hub.online(), 0);
    }
}
