//! The hub: which devices have a live session on this node, and the path from a committed
//! message to that session.
//!
//! The store calls [`Hub::queued`] on its writer thread right after each commit, in commit order,
//! so a session receives its device's messages in `seq` order. The hub never blocks there: each
//! session has a bounded channel, and when it is full the hub stops feeding that session and
//! raises its `lagged` flag. The session then re-reads its queue from the store, which holds
//! everything (the live path is only a shortcut that saves a read).

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
        });
        if let Some(old) = self.sessions.insert(device, link.clone()) {
            old.evicted.notify_one();
        }
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
}

impl QueueListener for Hub {
    fn queued(&self, device: DeviceKey, message: &QueuedMessage) {
        let Some(link) = self.sessions.get(&device) else {
            return;
        };
        // Once lagged, hand over nothing until the session has caught up from the store;
        // otherwise it could see a later message before an earlier one that was dropped.
        if link.lagged.load(Ordering::Acquire) {
            return;
        }
        if link.tx.try_send(message.clone()).is_err() {
            link.lagged.store(true, Ordering::Release);
        }
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
            from: Some(DeviceAddress {
                account: AccountId([0; 16]),
                device: DeviceId(1),
            }),
            server_ts: 0,
            payload: Arc::from(&b"x"[..]),
            franking: None,
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
        let new = hub.subscribe(d, 4);
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
