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
    // 2: the key directory, device lists, and the order of conversation commits.
    "
    -- KeyPackages: public keys a device publishes so others can add it to a conversation.
    -- One-time ones are deleted when claimed; the last-resort one is kept until replaced.
    CREATE TABLE key_packages (
        id          INTEGER PRIMARY KEY,
        device      INTEGER NOT NULL REFERENCES devices(key) ON DELETE CASCADE,
        last_resort INTEGER NOT NULL,      -- 1 for the device's fallback package
        expires_at  INTEGER NOT NULL,      -- ms since the Unix epoch (the package's not_after)
        bytes       BLOB NOT NULL          -- the TLS-encoded KeyPackage (public keys only)
    );
    CREATE INDEX key_packages_by_device ON key_packages (device, last_resort, id);

    -- An account's device list, signed by its account key; opaque to the server.
    CREATE TABLE device_lists (
        account BLOB PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        list    BLOB NOT NULL
    ) WITHOUT ROWID;

    -- Conversations the server orders commits for: the current epoch and the member accounts
    -- allowed to commit and to send in it.
    CREATE TABLE conversations (
        id          BLOB PRIMARY KEY,      -- the MLS group id (random, or derived for 1:1)
        epoch       INTEGER NOT NULL,
        updated_day INTEGER NOT NULL       -- days since the Unix epoch (coarse on purpose)
    ) WITHOUT ROWID;
    CREATE TABLE conversation_members (
        conversation BLOB NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        account      BLOB NOT NULL,
        PRIMARY KEY (conversation, account)
    ) WITHOUT ROWID;
    ",
    // 3: the disclosure ledger.
    "
    -- Every disclosure of an account's data to anyone but the account itself, hash-chained
    -- per account so the account's devices can verify it was not rewritten.
    CREATE TABLE disclosures (
        account   BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        seq       INTEGER NOT NULL,
        at_ms     INTEGER NOT NULL,
        recipient TEXT NOT NULL,
        what      TEXT NOT NULL,
        prev_hash BLOB NOT NULL,
        hash      BLOB NOT NULL,
        PRIMARY KEY (account, seq)
    ) WITHOUT ROWID;
    ",
    // 4: consents, the day of the last connection, disappearing messages, sealed sender.
    "
    -- Coarse on purpose: the day of the account's latest connection, nothing finer, no history.
    ALTER TABLE accounts ADD COLUMN last_seen_day INTEGER;

    -- The hash of the account's sealed-sender delivery token (NULL: no sealed delivery).
    ALTER TABLE accounts ADD COLUMN access_key_hash BLOB;

    -- The queue again, with the sender optional (NULL for sealed-sender messages, whose
    -- sender the server does not know) and an expiry for disappearing messages.
    CREATE TABLE queue_v4 (
        seq            INTEGER PRIMARY KEY,
        device         INTEGER NOT NULL,
        message_id     BLOB NOT NULL,
        sender_account BLOB,
        sender_device  INTEGER,
        server_ts      INTEGER NOT NULL,   -- ms since the Unix epoch
        payload        BLOB NOT NULL,      -- opaque (end-to-end encrypted) bytes
        expires_at     INTEGER,            -- ms; the copy is dropped then, delivered or not
        franking       BLOB                -- the sender's commitment to the content (32 bytes)
    );
    INSERT INTO queue_v4 (seq, device, message_id, sender_account, sender_device, server_ts, payload)
        SELECT seq, device, message_id, sender_account, sender_device, server_ts, payload FROM queue;
    DROP TABLE queue;
    ALTER TABLE queue_v4 RENAME TO queue;
    CREATE INDEX queue_by_device ON queue (device, seq);
    CREATE INDEX queue_expiring ON queue (expires_at) WHERE expires_at IS NOT NULL;

    -- Every change of an account's consent to an optional use of its data, with its time:
    -- the latest entry per purpose is in force; no entry means off.
    -- The abuse engine's decisions about an account (and operators' reviews), with reasons:
    -- metadata signals only, never content.
    CREATE TABLE abuse_decisions (
        id      INTEGER PRIMARY KEY,
        account BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        at_ms   INTEGER NOT NULL,
        action  TEXT NOT NULL,        -- allow | throttle | challenge | ban
        reasons TEXT NOT NULL,        -- JSON array of signal names
        by      TEXT NOT NULL         -- engine | operator
    );
    CREATE INDEX abuse_decisions_by_account ON abuse_decisions (account, id);

    -- A banned account's appeals, in its own words, for an operator to review.
    CREATE TABLE appeals (
        id      INTEGER PRIMARY KEY,
        account BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        at_ms   INTEGER NOT NULL,
        text    TEXT NOT NULL
    );

    CREATE TABLE consents (
        account BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        seq     INTEGER NOT NULL,
        purpose TEXT NOT NULL,
        granted INTEGER NOT NULL,
        at_ms   INTEGER NOT NULL,
        PRIMARY KEY (account, seq)
    ) WITHOUT ROWID;
    ",
    // 5: conversations without member lists, and device names sealed. The server no longer
    // knows who is in a conversation: members prove it per epoch with a token whose hash the
    // epoch's commit set. Device names become bytes only the account's devices can open
    // (plain names are dropped: the server cannot seal them; devices set them again).
    "
    ALTER TABLE devices DROP COLUMN name;
    ALTER TABLE devices ADD COLUMN sealed_name BLOB;   -- NULL until the device sets one

    DROP TABLE conversation_members;
    CREATE TABLE conversations_v5 (
        id          BLOB PRIMARY KEY,      -- the MLS group id (random)
        epoch       INTEGER NOT NULL,
        member_hash BLOB,                  -- hash of the epoch's membership token; NULL for a
                                           -- conversation ordered before v5 (until its next commit)
        used_day    INTEGER NOT NULL       -- day of the last commit or message (coarse on purpose)
    ) WITHOUT ROWID;
    INSERT INTO conversations_v5 (id, epoch, member_hash, used_day)
        SELECT id, epoch, NULL, updated_day FROM conversations;
    DROP TABLE conversations;
    ALTER TABLE conversations_v5 RENAME TO conversations;
    CREATE INDEX conversations_by_day ON conversations (used_day);
    ",
    // 6: each payload stored once. A message to a group used to be written once per
    // recipient device (a 256 KiB message to 5,120 devices: 1.3 GB); now `payloads` holds the
    // message once and each device's queue row only points at it, so a message costs
    // O(payload + devices). Existing copies of one message (same id, sender, time, expiry,
    // franking and bytes) become one payload; every queue row keeps its seq and device.
    "
    -- One row per accepted message: everything the recipients share. The ciphertext is the
    -- last column, so reading a row's metadata (expiry scans) never touches its overflow pages.
    -- A payload exists exactly as long as some queue row points at it: the trigger below
    -- deletes it with its last queue row, in the same statement, whatever deleted that row.
    CREATE TABLE payloads (
        id             INTEGER PRIMARY KEY, -- grows in acceptance order (expiry scans a prefix)
        message_id     BLOB NOT NULL,
        sender_account BLOB,               -- NULL for a sealed-sender message
        sender_device  INTEGER,
        server_ts      INTEGER NOT NULL,   -- ms since the Unix epoch
        expires_at     INTEGER,            -- ms; the message is dropped then, delivered or not
        franking       BLOB,               -- the sender's commitment to the content (32 bytes)
        payload        BLOB NOT NULL       -- opaque (end-to-end encrypted) bytes
    );

    -- Carry the old copies over: the first copy of each message gives its payload row the
    -- copy's seq as id (ids then follow acceptance order, as seqs did).
    CREATE INDEX queue_by_message ON queue (message_id);
    INSERT INTO payloads (id, message_id, sender_account, sender_device, server_ts, expires_at, franking, payload)
        SELECT seq, message_id, sender_account, sender_device, server_ts, expires_at, franking, payload
        FROM queue q
        WHERE NOT EXISTS (
            SELECT 1 FROM queue o
            WHERE o.message_id = q.message_id AND o.seq < q.seq AND o.payload = q.payload
              AND o.sender_account IS q.sender_account AND o.sender_device IS q.sender_device
              AND o.server_ts = q.server_ts AND o.expires_at IS q.expires_at
              AND o.franking IS q.franking);

    -- One row per (message, recipient device), pointing at the message's payload. seq is the
    -- rowid: it grows in commit order, so a device's queue read by (device, seq) is in
    -- delivery order.
    CREATE TABLE queue_v6 (
        seq        INTEGER PRIMARY KEY,
        device     INTEGER NOT NULL,
        payload_id INTEGER NOT NULL        -- payloads.id (kept by the trigger, not a foreign key)
    );
    INSERT INTO queue_v6 (seq, device, payload_id)
        SELECT q.seq, q.device, (
            SELECT MIN(o.seq) FROM queue o
            WHERE o.message_id = q.message_id AND o.payload = q.payload
              AND o.sender_account IS q.sender_account AND o.sender_device IS q.sender_device
              AND o.server_ts = q.server_ts AND o.expires_at IS q.expires_at
              AND o.franking IS q.franking)
        FROM queue q;
    DROP TABLE queue;
    ALTER TABLE queue_v6 RENAME TO queue;
    CREATE INDEX queue_by_device ON queue (device, seq);
    CREATE INDEX queue_by_payload ON queue (payload_id);
    CREATE INDEX payloads_expiring ON payloads (expires_at) WHERE expires_at IS NOT NULL;

    -- The last queue row of a payload takes the payload with it: acks, removed devices,
    -- deleted or banned accounts and the retention job all delete queue rows, and none can
    -- leave a payload behind (or delete one another device still waits for).
    CREATE TRIGGER queue_releases_payload AFTER DELETE ON queue
    BEGIN
        DELETE FROM payloads WHERE id = OLD.payload_id
            AND NOT EXISTS (SELECT 1 FROM queue WHERE payload_id = OLD.payload_id);
    END;
    ",
    // 7: verified reports count once. A keyed hash of each verified reported message's
    // franking commitment (nothing ties it to an account), kept while the message can still
    // be reported.
    "
    CREATE TABLE reported_messages (
        hash       BLOB PRIMARY KEY,       -- HMAC-SHA256(server key, franking commitment)
        expires_at INTEGER NOT NULL        -- ms: the end of the message's report window
    ) WITHOUT ROWID;
    CREATE INDEX reported_messages_expiring ON reported_messages (expires_at);
    ",
    // 8: the registration lock: an Argon2id hash of the account's PIN and the wrong guesses
    // counted against it (kept across restarts, so the budget holds).
    "
    ALTER TABLE accounts ADD COLUMN reglock_hash TEXT;                         -- NULL: no lock
    ALTER TABLE accounts ADD COLUMN reglock_failures INTEGER NOT NULL DEFAULT 0;
    ",
];

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::MIGRATIONS;

    /// A database from before v5 keeps its conversations' order through the upgrade, loses
    /// every member list, and waits for the next commit to set a membership token hash; its
    /// devices stay, without their plain names.
    #[test]
    fn v5_keeps_commit_order_and_devices_and_drops_member_lists_and_plain_names() {
        let c = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..4] {
            c.execute_batch(sql).unwrap();
        }
        c.execute_batch(
            "INSERT INTO accounts (id, phone_key, created_day, next_device) VALUES (x'aa', x'bb', 1, 2);
             INSERT INTO devices (account, device, name, secret_hash, created_day)
                 VALUES (x'aa', 1, 'laptop', x'cc', 1);
             INSERT INTO conversations (id, epoch, updated_day) VALUES (x'01', 7, 20000);
             INSERT INTO conversation_members (conversation, account) VALUES (x'01', x'aa');",
        )
        .unwrap();
        c.execute_batch(MIGRATIONS[4]).unwrap();
        let row: (i64, Option<Vec<u8>>, i64) = c
            .query_row(
                "SELECT epoch, member_hash, used_day FROM conversations",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, (7, None, 20000));
        let members: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'conversation_members'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(members, 0, "no table of who is in which conversation");
        let name: Option<Vec<u8>> = c
            .query_row("SELECT sealed_name FROM devices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(name, None, "a plain name is not carried over");
    }

    /// A database from before v6 with queued copies upgrades without loss: every queue row
    /// keeps its seq, device and everything it would have been fetched with, the copies of one
    /// message share one payload, distinct messages (even with the same id) stay distinct, and
    /// the payload then goes with its last copy.
    #[test]
    fn v6_stores_each_queued_payload_once_and_loses_no_copy() {
        let c = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..5] {
            c.execute_batch(sql).unwrap();
        }
        // A group message to devices 1-3 (one of them twice, a redelivered copy), a sealed
        // one-to-one message with an expiry and a franking tag, and a message reusing the group
        // message's id with other bytes (a sender may reuse ids; it must not merge).
        c.execute_batch(
            "INSERT INTO queue (seq, device, message_id, sender_account, sender_device, server_ts, payload, expires_at, franking) VALUES
                 (10, 1, x'01', x'aa', 1, 100, x'c0ffee', NULL, NULL),
                 (11, 2, x'01', x'aa', 1, 100, x'c0ffee', NULL, NULL),
                 (12, 3, x'01', x'aa', 1, 100, x'c0ffee', NULL, NULL),
                 (13, 3, x'01', x'aa', 1, 100, x'c0ffee', NULL, NULL),
                 (14, 2, x'02', NULL, NULL, 200, x'5ea1ed', 900, x'f0'),
                 (15, 1, x'01', x'aa', 1, 300, x'07e4', NULL, NULL);",
        )
        .unwrap();
        let rows = |c: &Connection, sql: &str| -> Vec<String> {
            let mut s = c.prepare(sql).unwrap();
            let n = s.column_count();
            s.query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
        };
        const COPY: &str = "seq, device, message_id, sender_account, sender_device, server_ts, payload, expires_at, franking";
        let before = rows(&c, &format!("SELECT {COPY} FROM queue ORDER BY seq"));
        c.execute_batch(MIGRATIONS[5]).unwrap();
        let after = rows(
            &c,
            &format!(
                "SELECT {COPY} FROM (SELECT q.seq, q.device, p.message_id, p.sender_account, p.sender_device,
                 p.server_ts, p.payload, p.expires_at, p.franking
                 FROM queue q JOIN payloads p ON p.id = q.payload_id) ORDER BY seq"
            ),
        );
        assert_eq!(after, before, "every copy, as it was");
        let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(
            count("SELECT COUNT(*) FROM payloads"),
            3,
            "one per distinct message"
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM queue WHERE payload_id = 10"),
            4,
            "the group message's copies share the payload of its first copy"
        );
        // The upgraded tables behave like new ones: payloads go with their last copy.
        c.execute_batch("DELETE FROM queue WHERE seq IN (10, 11, 12)")
            .unwrap();
        assert_eq!(
            count("SELECT COUNT(*) FROM payloads WHERE id = 10"),
            1,
            "seq 13 waits"
        );
        c.execute_batch("DELETE FROM queue WHERE device = 3").unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM payloads"), 2);
        c.execute_batch("DELETE FROM queue").unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM payloads"), 0);
    }
}
