//! The SQLite schema, as an ordered list of migrations applied by `PRAGMA user_version`.
//!
//! Every column here must be declared in the privacy manifest: storing a new field is a
//! decision to write down, not a side effect.

/// Migration `i` brings the schema from version `i` to `i + 1`. Never edit a published one.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: accounts, devices, verifications, queues.
    "
    CREATE TABLE accounts (
        id          BLOB PRIMARY KEY,      -- random 128-bit account id
        phone_key   BLOB NOT NULL UNIQUE,  -- HMAC-SHA256(server key, E.164 number)
        created_day INTEGER NOT NULL,      -- days since the Unix epoch
        next_device INTEGER NOT NULL       -- device ids are never reused within an account
    ) WITHOUT ROWID;

    CREATE TABLE devices (
        key         INTEGER PRIMARY KEY AUTOINCREMENT, -- storage-internal handle, never reused
        account     BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        device      INTEGER NOT NULL,
        name        TEXT NOT NULL,
        secret_hash BLOB NOT NULL,         -- SHA-256 of the 256-bit device secret
        created_day INTEGER NOT NULL,
        UNIQUE (account, device)
    );

    CREATE TABLE verifications (
        phone_key   BLOB PRIMARY KEY,
        code_hash   BLOB NOT NULL,         -- HMAC-SHA256(server key, code)
        expires_at  INTEGER NOT NULL,      -- ms since the Unix epoch
        attempts    INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- One row per (message, recipient device). seq is the rowid: it grows in commit order, so a
    -- device's queue read by (device, seq) is in delivery order, and the oldest rows are first in
    -- rowid order, which is what expiry scans.
    CREATE TABLE queue (
        seq            INTEGER PRIMARY KEY,
        device         INTEGER NOT NULL,
        message_id     BLOB NOT NULL,
        sender_account BLOB NOT NULL,
        sender_device  INTEGER NOT NULL,
        server_ts      INTEGER NOT NULL,   -- ms since the Unix epoch
        payload        BLOB NOT NULL       -- opaque (end-to-end encrypted) bytes
    );
    CREATE INDEX queue_by_device ON queue (device, seq);
    ",
];
