-- linechat database schema, version 3: the readable whole. linechatd builds and upgrades a
-- database with the ordered migrations in src/store/migrations.rs (one exclusive transaction,
-- PRAGMA user_version = the version); a test checks that they build exactly this schema.
-- Times are RFC 3339 UTC text with milliseconds, e.g. 2026-11-29T02:40:19.123Z.

-- Accounts. Names are unique regardless of case ("Alice" and "alice" are one account) and keep
-- the case they were registered with.
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,                       -- bcrypt, $2b$
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    is_admin      INTEGER NOT NULL DEFAULT 0           -- since version 3; set by `linechatd user admin`
);

-- Rooms, created on first join. Names are stored in lower case. The first and last message ids
-- (NULL while the room has none) are kept by the writer in the transaction that inserts the
-- messages; #my_messages uses them to visit only the rooms that can be on a page.
CREATE TABLE IF NOT EXISTS rooms (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    first_message_id INTEGER,                            -- since version 2
    last_message_id  INTEGER                             -- since version 2
);

-- Which rooms a user has ever joined: the scope of #my_messages.
CREATE TABLE IF NOT EXISTS memberships (
    user_id         INTEGER NOT NULL REFERENCES users (id),
    room_id         INTEGER NOT NULL REFERENCES rooms (id),
    first_joined_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (user_id, room_id)
) WITHOUT ROWID;

-- Every chat message, in commit order: id is the order of delivery and of history. The id is a
-- plain INTEGER PRIMARY KEY (no AUTOINCREMENT): the writer relies on a new row getting the
-- largest id + 1, so a multi-row INSERT's rows get consecutive ids.
CREATE TABLE IF NOT EXISTS messages (
    id         INTEGER PRIMARY KEY,
    room_id    INTEGER NOT NULL REFERENCES rooms (id),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    body       TEXT NOT NULL
);

-- A room's messages newest first (join replay, #my_messages): a range scan per room.
CREATE INDEX IF NOT EXISTS messages_room_id ON messages (room_id, id);
-- A user's own messages newest first (#all_messages).
CREATE INDEX IF NOT EXISTS messages_user_id ON messages (user_id, id);

-- What admins did (since version 3): who (the admin's name, or `cli` for the offline tool),
-- what, to whom, why. Names, not ids: the record outlives changes to the accounts.
CREATE TABLE IF NOT EXISTS moderation (
    id     INTEGER PRIMARY KEY,
    at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,                               -- kick, admin, revoke
    target TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
