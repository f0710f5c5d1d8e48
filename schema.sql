-- linechat database schema, version 10: the readable whole. linechatd builds and upgrades a
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
    is_admin      INTEGER NOT NULL DEFAULT 0,          -- since version 3; set by `linechatd user admin`
    -- Since version 4: a ban (#ban, `linechatd user ban`) refuses logins until this time
    -- (NULL: never banned or lifted; 9999-12-31T23:59:59.999Z: for good), for this reason.
    banned_until  TEXT,
    ban_reason    TEXT NOT NULL DEFAULT '',
    -- Since version 4: a mute (#mute) refuses chat lines until this time (same forms).
    muted_until   TEXT,
    -- Since version 6: the newest message id committed before one of the account's sessions
    -- last ended (every message before it was delivered to that session, in log order): the
    -- private messages after it arrived while the user was away.
    seen_id       INTEGER NOT NULL DEFAULT 0,
    -- Since version 10: when a session of the account last ended (#whois); NULL: never.
    last_seen_at  TEXT
);

-- The accounts banned or muted now, for the daemon's read of them every 2 seconds: partial
-- indexes, so that read visits the sanctioned rows only, however many accounts there are.
CREATE INDEX IF NOT EXISTS users_banned ON users (banned_until) WHERE banned_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS users_muted ON users (muted_until) WHERE muted_until IS NOT NULL;

-- Rooms, created on first join. Names are stored in lower case. The first and last message ids
-- (NULL while the room has none) are kept by the writer in the transaction that inserts the
-- messages; #my_messages uses them to visit only the rooms that can be on a page.
CREATE TABLE IF NOT EXISTS rooms (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    first_message_id INTEGER,                            -- since version 2
    last_message_id  INTEGER,                            -- since version 2
    -- Since version 10: the room's topic (#topic; empty: none), who set it and when.
    topic            TEXT NOT NULL DEFAULT '',
    topic_by         TEXT NOT NULL DEFAULT '',
    topic_at         TEXT
);

-- Which rooms a user has ever joined: the scope of #my_messages.
CREATE TABLE IF NOT EXISTS memberships (
    user_id         INTEGER NOT NULL REFERENCES users (id),
    room_id         INTEGER NOT NULL REFERENCES rooms (id),
    first_joined_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- Since version 9: the room's newest message id when one of the user's sessions last left
    -- it (every message up to there was delivered to that session, in log order); NULL until
    -- then. A join replays what came after it ("what I missed").
    seen_id         INTEGER,
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
    body       TEXT NOT NULL,
    -- Since version 4: when an admin deleted it (#delete); its body is then emptied and it
    -- leaves history and replay, but the row stays so no id is ever given out twice.
    deleted_at TEXT,
    -- Since version 10: 1 for an action (#me: "* NAME TEXT"), 0 for a plain message.
    action     INTEGER NOT NULL DEFAULT 0
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
    action TEXT NOT NULL,              -- kick, admin, revoke; since 4: ban, unban, mute, unmute, delete
    target TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);

-- Addresses and networks banned from connecting (since version 4), in CIDR form with the host
-- bits cleared (203.0.113.7/32, 203.0.113.0/24, 2001:db8::/32). A ban ends at `until`
-- (9999-12-31T23:59:59.999Z: for good); #unban deletes the row, the moderation log keeps it.
CREATE TABLE IF NOT EXISTS address_bans (
    network TEXT PRIMARY KEY,
    until   TEXT NOT NULL,
    reason  TEXT NOT NULL DEFAULT '',
    actor   TEXT NOT NULL,                               -- the admin's name, or cli
    at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) WITHOUT ROWID;

-- A cluster node's place in the cluster's stream (since version 5): the sequence of the last
-- record it applied, written in the same transaction as that record's effects, so a restarted
-- node resumes at the next record and applies none twice. Empty on a single node.
CREATE TABLE IF NOT EXISTS log_position (
    stream TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL
) WITHOUT ROWID;

-- Which session sits in which room across the cluster (since version 5), as of log_position:
-- a restarted node seats them again before it applies the next record. `session` is the
-- session id (its high 32 bits name the node incarnation) stored as a signed integer. Empty on
-- a single node, whose presence ends with the process.
CREATE TABLE IF NOT EXISTS seats (
    session INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    room_id INTEGER NOT NULL REFERENCES rooms (id)
);

-- Private conversations (since version 6): each pair of accounts that exchanged a private
-- message has a room named `@LOW:HIGH` (their ids; no client can join it) holding the messages,
-- and its row here naming the two parties, for finding a user's conversations.
CREATE TABLE IF NOT EXISTS conversations (
    room_id INTEGER PRIMARY KEY REFERENCES rooms (id),
    low     INTEGER NOT NULL REFERENCES users (id),
    high    INTEGER NOT NULL REFERENCES users (id)
);
CREATE INDEX IF NOT EXISTS conversations_low ON conversations (low);
CREATE INDEX IF NOT EXISTS conversations_high ON conversations (high);

-- Whom each account refuses private messages from (since version 7, #ignore): such a message
-- is stored (the sender's history has it) but never delivered to, counted for or shown to the
-- account while the row is here.
CREATE TABLE IF NOT EXISTS ignores (
    user_id    INTEGER NOT NULL REFERENCES users (id),
    ignored_id INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (user_id, ignored_id)
) WITHOUT ROWID;

-- The words of every message, for #search (since version 8): a contentless full-text index
-- (the text stays in messages only), written by the writer in the transaction that inserts the
-- message, so a committed message is searchable at once; a deleted message leaves it. rowid is
-- the message id; `body` holds its words, `scope` two tokens, `r<room id>` and `u<sender id>`,
-- so a search within some rooms or from one sender is an intersection inside the index.
-- Words are split and folded by unicode61: case and diacritics do not matter.
CREATE VIRTUAL TABLE IF NOT EXISTS message_words USING fts5 (
    body, scope, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
);
