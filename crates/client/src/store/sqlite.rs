//! [`SqliteStore`]: the store in one SQLite file, one SQL table per [`Table`] with a BLOB key
//! (SQLite compares BLOBs with `memcmp`, the byte order the trait promises) and a BLOB value.

use std::ops::Bound;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::{Batch, Direction, KeyRange, Op, Store, StoreError, Table, check_key};

/// The layout this code writes, kept in SQLite's `user_version`: one `key`/`value` table per
/// [`Table`]. Raise it (with a migration) whenever the layout or a record's encoding changes.
const FORMAT: u32 = 1;

/// One connection behind a mutex. Calls run on the caller's thread: the client's statements are
/// point reads, short scans and one small transaction per commit, and a commit's `fsync` is the
/// durability the caller waits for anyway.
pub struct SqliteStore {
    db: Mutex<Connection>,
}

impl SqliteStore {
    /// Open (creating) the store at `path`: WAL with `synchronous = FULL` (a commit that
    /// returned survives power loss), `secure_delete` (deleted values are overwritten, not left
    /// in free pages), and every table of [`Table::ALL`]. A file in another format (a `state.db`
    /// from before this store, or from a newer version) is refused with
    /// [`StoreError::Incompatible`], never read as this one.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let db = Connection::open(path).map_err(error)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
             PRAGMA secure_delete = ON;",
        )
        .map_err(error)?;
        let version: u32 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(error)?;
        let tables: u32 = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(error)?;
        match version {
            FORMAT => {}
            0 if tables == 0 => {
                db.execute_batch(&format!("PRAGMA user_version = {FORMAT};"))
                    .map_err(error)?;
            }
            0 => {
                return Err(StoreError::Incompatible(format!(
                    "{} is from an earlier Sirr version (SQL tables, not the key-value store); \
                     there is no migration before release: register this home again",
                    path.display()
                )));
            }
            v => {
                return Err(StoreError::Incompatible(format!(
                    "{} has store format {v}; this version reads format {FORMAT}",
                    path.display()
                )));
            }
        }
        for t in Table::ALL {
            db.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {} (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;",
                t.name()
            ))
            .map_err(error)?;
        }
        Ok(SqliteStore { db: Mutex::new(db) })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.db
            .lock()
            .map_err(|_| StoreError::Unavailable("the SQLite connection's lock is poisoned".into()))
    }
}

/// The SQL condition and parameters for `range` on column `key`.
fn condition(range: &KeyRange) -> (String, Vec<Vec<u8>>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    match &range.start {
        Bound::Included(k) => {
            clauses.push("key >= ?");
            params.push(k.clone());
        }
        Bound::Excluded(k) => {
            clauses.push("key > ?");
            params.push(k.clone());
        }
        Bound::Unbounded => {}
    }
    match &range.end {
        Bound::Included(k) => {
            clauses.push("key <= ?");
            params.push(k.clone());
        }
        Bound::Excluded(k) => {
            clauses.push("key < ?");
            params.push(k.clone());
        }
        Bound::Unbounded => {}
    }
    if clauses.is_empty() {
        ("1".to_owned(), params)
    } else {
        (clauses.join(" AND "), params)
    }
}

fn error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DiskFull) => StoreError::Full,
        Some(C::DatabaseCorrupt | C::NotADatabase) => StoreError::Corrupt(e.to_string()),
        Some(C::DatabaseBusy | C::DatabaseLocked | C::CannotOpen | C::ReadOnly | C::PermissionDenied) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

fn apply(tx: &rusqlite::Transaction<'_>, op: &Op) -> Result<(), StoreError> {
    match op {
        Op::Put { table, key, value } => {
            check_key(*table, key)?;
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO {} (key, value) VALUES (?, ?)",
                table.name()
            ))
            .and_then(|mut s| s.execute(rusqlite::params![key, value]))
            .map_err(error)?;
        }
        Op::Delete { table, key } => {
            check_key(*table, key)?;
            tx.prepare_cached(&format!("DELETE FROM {} WHERE key = ?", table.name()))
                .and_then(|mut s| s.execute([key]))
                .map_err(error)?;
        }
        Op::DeleteRange { table, range } => {
            let (cond, params) = condition(range);
            tx.execute(
                &format!("DELETE FROM {} WHERE {cond}", table.name()),
                params_from_iter(params.iter()),
            )
            .map_err(error)?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.lock()?;
        db.prepare_cached(&format!("SELECT value FROM {} WHERE key = ?", table.name()))
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(error)
    }

    async fn scan(
        &self,
        table: Table,
        range: KeyRange,
        direction: Direction,
        limit: Option<usize>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let (cond, params) = condition(&range);
        let order = match direction {
            Direction::Forward => "ASC",
            Direction::Reverse => "DESC",
        };
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let db = self.lock()?;
        let mut s = db
            .prepare_cached(&format!(
                "SELECT key, value FROM {} WHERE {cond} ORDER BY key {order} LIMIT {limit}",
                table.name()
            ))
            .map_err(error)?;
        let rows = s
            .query_map(params_from_iter(params.iter()), |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(error)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(error)?;
        Ok(rows)
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut db = self.lock()?;
        let tx = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(error)?;
        // A failing op returns early: dropping `tx` rolls every earlier op back.
        for op in &batch.0 {
            apply(&tx, op)?;
        }
        tx.commit().map_err(error)?;
        // Deleted values (disappeared messages) must not linger in the write-ahead log either.
        if batch
            .0
            .iter()
            .any(|op| matches!(op, Op::Delete { .. } | Op::DeleteRange { .. }))
        {
            db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_store_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        super::super::contract::run(&store).await;
    }

    #[tokio::test]
    async fn a_commit_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            let mut b = Batch::new();
            b.put(Table::Messages, vec![1, 2], b"kept".to_vec());
            b.put(Table::Messages, vec![1, 3], b"gone".to_vec());
            store.commit(b).await.unwrap();
            let mut b = Batch::new();
            b.delete(Table::Messages, vec![1, 3]);
            store.commit(b).await.unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.get(Table::Messages, &[1, 2]).await.unwrap(),
            Some(b"kept".to_vec())
        );
        assert_eq!(store.get(Table::Messages, &[1, 3]).await.unwrap(), None);
        // The deleted value is overwritten, and the log emptied: its bytes are in no file.
        for name in ["s.db", "s.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
                assert!(
                    !bytes.windows(4).any(|w| w == b"gone"),
                    "{name} still holds a deleted value"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_database_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let db = Connection::open(&old).unwrap();
            db.execute_batch("CREATE TABLE kv (name TEXT PRIMARY KEY, value BLOB NOT NULL);")
                .unwrap();
        }
        assert!(matches!(
            SqliteStore::open(&old),
            Err(StoreError::Incompatible(_))
        ));
        let newer = dir.path().join("newer.db");
        {
            let db = Connection::open(&newer).unwrap();
            db.execute_batch("PRAGMA user_version = 99;").unwrap();
        }
        assert!(matches!(
            SqliteStore::open(&newer),
            Err(StoreError::Incompatible(_))
        ));
        // Its own format opens again.
        let own = dir.path().join("own.db");
        drop(SqliteStore::open(&own).unwrap());
        let store = SqliteStore::open(&own).unwrap();
        store
            .commit(Batch(vec![Op::Put {
                table: Table::Kv,
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            }]))
            .await
            .unwrap();
    }

    #[test]
    fn a_non_database_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        std::fs::write(&path, vec![0x55; 8192]).unwrap();
        assert!(matches!(SqliteStore::open(&path), Err(StoreError::Corrupt(_))));
    }
}
