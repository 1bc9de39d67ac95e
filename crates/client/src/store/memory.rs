//! [`MemoryStore`]: the store in a `BTreeMap`, for tests and for a client that keeps nothing
//! between runs. Always available (it needs nothing from the platform).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use super::{Batch, Direction, KeyRange, Op, Store, StoreError, Table, check_key};

/// A key of the map: the table, then the key within it.
type Key = (Table, Vec<u8>);
type Map = BTreeMap<Key, Vec<u8>>;
/// What an applied op replaced: the key and its old value (`None`: it was absent).
type Undo = Vec<(Key, Option<Vec<u8>>)>;

/// Everything in memory, behind a mutex. A commit applies its ops in place and, if one is
/// refused, puts back what the earlier ops changed before returning the error, so a batch is
/// all or nothing without copying the map.
#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<Map>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Map>, StoreError> {
        self.map
            .lock()
            .map_err(|_| StoreError::Unavailable("the memory store's lock is poisoned".into()))
    }
}

/// The map range of `range` within `table`.
fn bounds(table: Table, range: &KeyRange) -> (Bound<Key>, Bound<Key>) {
    let start = match &range.start {
        Bound::Included(k) => Bound::Included((table, k.clone())),
        Bound::Excluded(k) => Bound::Excluded((table, k.clone())),
        Bound::Unbounded => Bound::Included((table, Vec::new())),
    };
    let end = match &range.end {
        Bound::Included(k) => Bound::Included((table, k.clone())),
        Bound::Excluded(k) => Bound::Excluded((table, k.clone())),
        Bound::Unbounded => match Table::ALL.iter().position(|t| *t == table) {
            Some(i) if i + 1 < Table::ALL.len() => Bound::Excluded((Table::ALL[i + 1], Vec::new())),
            _ => Bound::Unbounded,
        },
    };
    (start, end)
}

/// Whether a map range is empty (a start after its end would make `BTreeMap::range` panic).
fn empty(start: &Bound<Key>, end: &Bound<Key>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
        _ => false,
    }
}

fn apply(map: &mut Map, op: &Op, undo: &mut Undo) -> Result<(), StoreError> {
    match op {
        Op::Put { table, key, value } => {
            check_key(*table, key)?;
            let old = map.insert((*table, key.clone()), value.clone());
            undo.push(((*table, key.clone()), old));
        }
        Op::Delete { table, key } => {
            check_key(*table, key)?;
            if let Some(old) = map.remove(&(*table, key.clone())) {
                undo.push(((*table, key.clone()), Some(old)));
            }
        }
        Op::DeleteRange { table, range } => {
            let (start, end) = bounds(*table, range);
            if empty(&start, &end) {
                return Ok(());
            }
            let keys: Vec<_> = map.range((start, end)).map(|(k, _)| k.clone()).collect();
            for k in keys {
                if let Some(old) = map.remove(&k) {
                    undo.push((k, Some(old)));
                }
            }
        }
    }
    Ok(())
}

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl Store for MemoryStore {
    async fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.get(&(table, key.to_vec())).cloned())
    }

    async fn scan(
        &self,
        table: Table,
        range: KeyRange,
        direction: Direction,
        limit: Option<usize>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let map = self.lock()?;
        let (start, end) = bounds(table, &range);
        if empty(&start, &end) {
            return Ok(Vec::new());
        }
        let iter = map.range((start, end)).map(|((_, k), v)| (k.clone(), v.clone()));
        let limit = limit.unwrap_or(usize::MAX);
        Ok(match direction {
            Direction::Forward => iter.take(limit).collect(),
            Direction::Reverse => iter.rev().take(limit).collect(),
        })
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let mut map = self.lock()?;
        let mut undo = Vec::new();
        for op in &batch.0 {
            if let Err(e) = apply(&mut map, op, &mut undo) {
                for (k, old) in undo.into_iter().rev() {
                    match old {
                        Some(v) => map.insert(k, v),
                        None => map.remove(&k),
                    };
                }
                return Err(e);
            }
        }
        Ok(())
    }
}
