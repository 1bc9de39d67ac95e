//! Texts written while the server could not be reached, kept on the device in the order they
//! were written until the server accepts them.
//!
//! The queue lives in the store's `Kv` table under `outbox ‖ id` (id: big-endian, one more than
//! the newest), so it survives a reload or a killed process. Whoever sends takes the oldest
//! first and removes an entry only after the server accepted it: a crash in between sends it
//! again (the receiver may then see it twice; the queue never loses one).

use serde::{Deserialize, Serialize};
use sirr_proto::ConversationId;

use crate::Result;
use crate::state::{State, decode, encode};
use crate::store::{Batch, Direction, KeyRange, Table};

const PREFIX: &[u8] = b"outbox ";
/// Most texts one device keeps waiting; more is refused rather than stored without bound.
pub const MAX_QUEUED: usize = 1_000;

/// One text waiting to be sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// Its place in the queue (and its local id until it is sent).
    pub id: u64,
    pub conversation: ConversationId,
    pub text: String,
    /// When it was written, ms since the Unix epoch.
    pub written_at: u64,
}

fn key(id: u64) -> Vec<u8> {
    [PREFIX, &id.to_be_bytes()[..]].concat()
}

impl State {
    /// Puts `text` at the end of the queue; refuses once [`MAX_QUEUED`] texts wait.
    pub async fn queue_text(
        &self,
        conversation: ConversationId,
        text: &str,
        written_at: u64,
    ) -> Result<Queued> {
        crate::check_text(text)?;
        let waiting = self.queued().await?;
        if waiting.len() >= MAX_QUEUED {
            return Err(crate::ClientError::Invalid(format!(
                "{MAX_QUEUED} messages are already waiting for the connection"
            )));
        }
        let q = Queued {
            id: waiting.last().map_or(1, |q| q.id + 1),
            conversation,
            text: text.to_owned(),
            written_at,
        };
        let mut b = Batch::new();
        b.put(Table::Kv, key(q.id), encode(&q)?);
        self.commit(b).await?;
        Ok(q)
    }

    /// Every text waiting, oldest first.
    pub async fn queued(&self) -> Result<Vec<Queued>> {
        let rows = self
            .store()
            .scan(Table::Kv, KeyRange::prefix(PREFIX), Direction::Forward, None)
            .await?;
        rows.iter().map(|(_, v)| decode("queued message", v)).collect()
    }

    /// Takes a text off the queue (it was sent).
    pub async fn unqueue(&self, id: u64) -> Result<()> {
        let mut b = Batch::new();
        b.delete(Table::Kv, key(id));
        self.commit(b).await
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn texts_wait_in_order_survive_a_reopen_and_leave_only_when_taken_off() {
        let store = Arc::new(MemoryStore::new());
        let s = State::in_store(store.clone()).await.unwrap();
        let c = ConversationId([3; 16]);
        let a = s.queue_text(c, "first", 10).await.unwrap();
        let b = s.queue_text(c, "second", 11).await.unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        let again = State::in_store(store).await.unwrap();
        let texts: Vec<String> = again
            .queued()
            .await
            .unwrap()
            .into_iter()
            .map(|q| q.text)
            .collect();
        assert_eq!(texts, ["first", "second"]);
        again.unqueue(a.id).await.unwrap();
        assert_eq!(again.queued().await.unwrap(), std::slice::from_ref(&b));
        let c2 = again.queue_text(c, "third", 12).await.unwrap();
        assert_eq!(c2.id, 3, "ids keep growing after the oldest left");
        assert!(
            again
                .queue_text(c, &"x".repeat(crate::MAX_TEXT + 1), 13)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_queue_is_bounded() {
        let s = State::in_store(Arc::new(MemoryStore::new())).await.unwrap();
        let c = ConversationId([1; 16]);
        for i in 0..MAX_QUEUED {
            s.queue_text(c, "t", i as u64).await.unwrap();
        }
        let refused = s.queue_text(c, "one too many", 0).await.unwrap_err();
        assert!(refused.to_string().contains("already waiting"), "{refused}");
        assert_eq!(s.queued().await.unwrap().len(), MAX_QUEUED);
    }
}
