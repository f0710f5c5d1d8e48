//! Server lines: [`Reply`] encodes every line the server sends, and nothing else does.

use super::{ErrCode, Verb, WELCOME_NAMES_MAX};
use bytes::{BufMut, Bytes, BytesMut};

/// One stored message as history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistRow {
    /// Message id (ascending in commit order).
    pub id: i64,
    /// RFC 3339 UTC time of the commit.
    pub time: String,
    /// Room name.
    pub room: String,
    /// Sender's name.
    pub name: String,
    /// Text, verbatim.
    pub text: String,
    /// An action (`#me`): its `HIST` line names the sender `*NAME`.
    pub action: bool,
}

/// A room's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// The text, as typed.
    pub text: String,
    /// Who set it.
    pub by: String,
    /// When (RFC 3339 UTC).
    pub at: String,
}

/// Every line the server sends. [`Reply::encode`] is the one place their grammar lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<'a> {
    /// `INFO TEXT`
    Info(&'a str),
    /// `OK VERB [ARGS]`
    Ok(&'a str, &'a str),
    /// `ERR CODE TEXT`
    Err(ErrCode, &'a str),
    /// `PONG`
    Pong,
    /// `MSG ROOM NAME TEXT`
    Msg {
        /// Room the message was said in.
        room: &'a str,
        /// Sender.
        name: &'a str,
        /// Text, verbatim.
        text: &'a str,
    },
    /// `ACTION ROOM NAME TEXT`: an action (`#me`) committed in the room, shown `* NAME TEXT`.
    Action {
        /// Room it was done in.
        room: &'a str,
        /// Who.
        name: &'a str,
        /// Text, verbatim.
        text: &'a str,
    },
    /// `PRIV FROM TO TEXT`: a private message, to both parties' sessions.
    Priv {
        /// Sender.
        from: &'a str,
        /// Recipient.
        to: &'a str,
        /// Text, verbatim.
        text: &'a str,
    },
    /// `PRIVATES N`: the count of the `PRIVATE` lines that follow (`#privates`).
    Privates(usize),
    /// `PRIVATE NAME UNREAD`: a conversation with NAME, UNREAD of its messages from NAME new
    /// since a session of this user last ended.
    Private {
        /// The other party.
        name: &'a str,
        /// Messages from them since.
        unread: u64,
    },
    /// `JOIN ROOM NAME N`
    Join {
        /// Room.
        room: &'a str,
        /// The user who came.
        name: &'a str,
        /// Distinct users now in the room.
        count: usize,
    },
    /// `LEAVE ROOM NAME N`
    Leave {
        /// Room.
        room: &'a str,
        /// The user who went.
        name: &'a str,
        /// Distinct users now in the room.
        count: usize,
    },
    /// `USERS ROOM N NAME...`
    Users {
        /// Room.
        room: &'a str,
        /// Sorted names.
        names: &'a [&'a str],
    },
    /// `ROOMS N`
    Rooms(usize),
    /// `ROOM NAME N [TOPIC]`
    Room {
        /// Room name.
        room: &'a str,
        /// Distinct users in it.
        count: usize,
        /// Its topic ("" for none).
        topic: &'a str,
    },
    /// `TOPIC ROOM NAME TIME TEXT`: ROOM's topic, set by NAME at TIME.
    Topic {
        /// The room.
        room: &'a str,
        /// Who set it.
        by: &'a str,
        /// When.
        at: &'a str,
        /// The topic.
        text: &'a str,
    },
    /// `WHOIS NAME SINCE online [ROOM...]` or `WHOIS NAME SINCE away LAST_SEEN|unknown`.
    Whois {
        /// The account, as registered.
        name: &'a str,
        /// When it registered.
        since: &'a str,
        /// `Ok(rooms)`: online, in these rooms; `Err(last seen)`: away (`None`: not known, the
        /// last session having ended before the daemon kept it, or with the daemon killed).
        presence: Result<&'a [&'a str], Option<&'a str>>,
    },
    /// `HIST ID TIME ROOM NAME TEXT`
    Hist(&'a HistRow),
    /// `STATS key=value ...`
    Stats(&'a Stats),
    /// `MODLOG ID TIME ACTOR ACTION TARGET [REASON]`
    Modlog(&'a ModRow),
    /// `DELETED ROOM ID NAME`: an admin removed message ID (by NAME) from ROOM's history.
    Deleted {
        /// Room the message was in.
        room: &'a str,
        /// The message's id.
        id: i64,
        /// Who had said it.
        name: &'a str,
    },
}

/// One stored moderation action, as `#modlog` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModRow {
    /// Row id (ascending in time).
    pub id: i64,
    /// RFC 3339 UTC time.
    pub time: String,
    /// The admin's name, or `cli`.
    pub actor: String,
    /// `kick`, `admin`, `revoke`.
    pub action: String,
    /// The account acted on.
    pub target: String,
    /// Why (may be empty).
    pub reason: String,
}

/// The server's vital signs, as `#stats` reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Seconds since the daemon started.
    pub uptime: u64,
    /// Open connections (guests included).
    pub connections: usize,
    /// Logged-in sessions.
    pub sessions: usize,
    /// Distinct users logged in.
    pub users: usize,
    /// Rooms with users in them.
    pub rooms: usize,
    /// Messages stored, ever.
    pub messages: i64,
    /// Lines delivered per second, averaged over the last minute.
    pub delivered_per_sec: f64,
    /// Longest outbound queue of any session, in items.
    pub sendq_max: usize,
    /// Operations waiting for the store's writer.
    pub writer_queue: usize,
    /// Commands waiting for the room actor.
    pub actor_queue: usize,
}

impl Reply<'_> {
    /// Appends this reply, CRLF-terminated, to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        use std::fmt::Write;
        // Writing into a BytesMut cannot fail.
        let _ = match self {
            Reply::Info(text) => write!(buf, "INFO {text}"),
            Reply::Ok(verb, "") => write!(buf, "OK {verb}"),
            Reply::Ok(verb, args) => write!(buf, "OK {verb} {args}"),
            Reply::Err(code, text) => write!(buf, "ERR {code} {text}"),
            Reply::Pong => write!(buf, "PONG"),
            Reply::Msg { room, name, text } => write!(buf, "MSG {room} {name} {text}"),
            Reply::Action { room, name, text } => write!(buf, "ACTION {room} {name} {text}"),
            Reply::Priv { from, to, text } => write!(buf, "PRIV {from} {to} {text}"),
            Reply::Privates(n) => write!(buf, "PRIVATES {n}"),
            Reply::Private { name, unread } => write!(buf, "PRIVATE {name} {unread}"),
            Reply::Join { room, name, count } => write!(buf, "JOIN {room} {name} {count}"),
            Reply::Leave { room, name, count } => write!(buf, "LEAVE {room} {name} {count}"),
            Reply::Deleted { room, id, name } => write!(buf, "DELETED {room} {id} {name}"),
            Reply::Users { room, names } => {
                let _ = write!(buf, "USERS {room} {}", names.len());
                for n in names.iter() {
                    buf.put_u8(b' ');
                    buf.put_slice(n.as_bytes());
                }
                Ok(())
            }
            Reply::Rooms(n) => write!(buf, "ROOMS {n}"),
            Reply::Room {
                room,
                count,
                topic: "",
            } => write!(buf, "ROOM {room} {count}"),
            Reply::Room { room, count, topic } => write!(buf, "ROOM {room} {count} {topic}"),
            Reply::Topic { room, by, at, text } => write!(buf, "TOPIC {room} {by} {at} {text}"),
            Reply::Whois {
                name,
                since,
                presence: Ok(rooms),
            } => {
                let _ = write!(buf, "WHOIS {name} {since} online");
                for room in rooms.iter() {
                    let _ = write!(buf, " {room}");
                }
                Ok(())
            }
            Reply::Whois {
                name,
                since,
                presence: Err(seen),
            } => write!(
                buf,
                "WHOIS {name} {since} away {}",
                seen.unwrap_or("unknown")
            ),
            Reply::Stats(st) => write!(
                buf,
                "STATS uptime={} connections={} sessions={} users={} rooms={} messages={} \
                 delivered_per_sec={:.1} sendq_max={} writer_queue={} actor_queue={}",
                st.uptime,
                st.connections,
                st.sessions,
                st.users,
                st.rooms,
                st.messages,
                st.delivered_per_sec,
                st.sendq_max,
                st.writer_queue,
                st.actor_queue
            ),
            Reply::Modlog(m) if m.reason.is_empty() => write!(
                buf,
                "MODLOG {} {} {} {} {}",
                m.id, m.time, m.actor, m.action, m.target
            ),
            Reply::Modlog(m) => write!(
                buf,
                "MODLOG {} {} {} {} {} {}",
                m.id, m.time, m.actor, m.action, m.target, m.reason
            ),
            Reply::Hist(h) => write!(
                buf,
                "HIST {} {} {} {}{} {}",
                h.id,
                h.time,
                h.room,
                if h.action { "*" } else { "" },
                h.name,
                h.text
            ),
        };
        buf.put_slice(b"\r\n");
    }

    /// This reply as one shareable line.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// The `INFO` line that is a session's last during server shutdown.
pub const SHUTTING_DOWN: &str = "server shutting down";

/// The `INFO` lines sent on connect.
pub fn greeting() -> Vec<String> {
    vec![
        format!("linechat {} ready", env!("CARGO_PKG_VERSION")),
        "#register NAME PASSWORD to make an account, #login NAME PASSWORD to log in, #help for all commands".to_string(),
    ]
}

/// The `INFO` lines `#help` sends: one per verb, from the verb table, forms aligned.
pub fn help_lines() -> Vec<String> {
    Verb::ALL
        .iter()
        .map(|v| {
            let spec = v.spec();
            // Two columns; a form too long for the second still gets two spaces before its help.
            let width = if spec.form.len() <= 23 { 26 } else { 36 };
            let width = width.max(spec.form.len() + 2);
            format!("{:<width$}{}", spec.form, spec.help)
        })
        .collect()
}

/// The `INFO` line after `OK login` when private messages arrived while the user was away.
pub fn unread_notice(total: u64, from: &[&str]) -> String {
    let what = if total == 1 { "message" } else { "messages" };
    format!(
        "{total} unread private {what} from {}: #privates NAME to read them",
        from.join(", ")
    )
}

/// The `INFO` line in a returning user's join replay, between the messages they had seen and
/// the `shown` they missed (`count` in all, the first of those shown being `first`): the line
/// client draws its "new since you were last here" separator at it.
pub fn missed_notice(room: &str, count: u64, at_least: bool, shown: usize, first: i64) -> String {
    let what = if count == 1 { "message" } else { "messages" };
    let more = if at_least { "+" } else { "" };
    let mut s = format!("{count}{more} new {what} in {room} since you were last here");
    if (shown as u64) < count || at_least {
        s.push_str(&format!(
            "; the newest {shown} follow, the older ones: #my_messages {shown} {first}"
        ));
    }
    s
}

/// The welcome line sent on join: names the room and who is here.
pub fn welcome(room: &str, names: &[&str]) -> String {
    let mut s = format!("welcome to {room}; here now ({}):", names.len());
    for n in names.iter().take(WELCOME_NAMES_MAX) {
        s.push(' ');
        s.push_str(n);
    }
    if names.len() > WELCOME_NAMES_MAX {
        s.push_str(&format!(" and {} more", names.len() - WELCOME_NAMES_MAX));
    }
    s
}
