-- Migration 1: the linechat schema as version 0.1.0 shipped it (then the whole of schema.sql).
-- Frozen: later changes are further migrations in migrations.rs; schema.sql is the whole.
-- Times are RFC 3339 UTC text with milliseconds, e.g. 2026-11-29T02:40:19.123Z.

-- Accounts. Names are unique regardless of case ("Alice" and "alice" are one account) and keep
-- the case they were registered with.
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,                       -- bcrypt, $2b$
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Rooms, created on first join. Names are stored in lower case.
CREATE TABLE IF NOT EXISTS rooms (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
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
