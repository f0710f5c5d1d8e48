//! The wire protocol, pure: parsing client lines into [`Request`]s, validating names and
//! passwords, and formatting every server line ([`Reply`]). Nothing here does I/O.
//!
//! `protocol.md` is the contract this module implements; every reply form in it is produced by
//! [`Reply::encode`] and nowhere else.

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;
use std::fmt;

/// Longest user or room name, in bytes (`[A-Za-z0-9_-]{1,32}`).
pub const NAME_MAX: usize = 32;
/// Shortest accepted password, in bytes.
pub const PASSWORD_MIN: usize = 8;
/// Longest accepted password, in bytes: bcrypt's input limit, so nothing is ever truncated.
pub const PASSWORD_MAX: usize = 72;
/// Page size of `#all_messages` / `#my_messages` when the client gives none.
pub const HISTORY_DEFAULT_LIMIT: u32 = 100;
/// Largest page a client may ask for.
pub const HISTORY_MAX_LIMIT: u32 = 1000;
/// At most this many names are listed in the welcome line on join; the rest are counted.
pub const WELCOME_NAMES_MAX: usize = 20;

/// Error codes: the second word of an `ERR` line. The table in protocol.md lists the same set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrCode {
    /// Not logged in, or login failed.
    Auth,
    /// The name is already registered.
    Exists,
    /// A user or room name does not match `[A-Za-z0-9_-]{1,32}`.
    BadName,
    /// The password is shorter than 8 or longer than 72 bytes.
    BadPass,
    /// A chat line or room verb was sent outside a room.
    NoRoom,
    /// The verb is not known.
    Unknown,
    /// Missing, extra or malformed arguments, or a verb that makes no sense in this state.
    Usage,
    /// The database failed; the request had no effect.
    Storage,
    /// The line was longer than the line limit and was discarded.
    TooLong,
    /// The line was not valid UTF-8 and was discarded.
    Utf8,
    /// The server is at its connection limit, or this address at its own.
    Busy,
    /// Over the rate limit: the request was refused; `retry-after=MS` says when to retry.
    RateLimit,
    /// Kept flooding after many rate-limit refusals: the connection is closed.
    Flood,
    /// Did not log in in time, or stayed idle too long: the connection is closed.
    Timeout,
    /// The client spoke HTTP: the connection is closed.
    Http,
}

impl ErrCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrCode::Auth => "auth",
            ErrCode::Exists => "exists",
            ErrCode::BadName => "badname",
            ErrCode::BadPass => "badpass",
            ErrCode::NoRoom => "noroom",
            ErrCode::Unknown => "unknown",
            ErrCode::Usage => "usage",
            ErrCode::Storage => "storage",
            ErrCode::TooLong => "toolong",
            ErrCode::Utf8 => "utf8",
            ErrCode::Busy => "busy",
            ErrCode::RateLimit => "ratelimit",
            ErrCode::Flood => "flood",
            ErrCode::Timeout => "timeout",
            ErrCode::Http => "http",
        }
    }

    /// Every code, in the order protocol.md lists them.
    pub const ALL: [ErrCode; 15] = [
        ErrCode::Auth,
        ErrCode::Exists,
        ErrCode::BadName,
        ErrCode::BadPass,
        ErrCode::NoRoom,
        ErrCode::Unknown,
        ErrCode::Usage,
        ErrCode::Storage,
        ErrCode::TooLong,
        ErrCode::Utf8,
        ErrCode::Busy,
        ErrCode::RateLimit,
        ErrCode::Flood,
        ErrCode::Timeout,
        ErrCode::Http,
    ];
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol-level failure: the code and the human text of the `ERR` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError {
    /// Machine-readable code.
    pub code: ErrCode,
    /// Human-readable explanation (one line).
    pub text: String,
}

impl ProtoError {
    /// A new error with the given code and text.
    pub fn new(code: ErrCode, text: impl Into<String>) -> Self {
        ProtoError {
            code,
            text: text.into(),
        }
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

impl std::error::Error for ProtoError {}

/// Which page of a history listing: at most `limit` messages with id below `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Number of messages, 1 to [`HISTORY_MAX_LIMIT`].
    pub limit: u32,
    /// Only messages with an id strictly below this one; `None` means the newest.
    pub before: Option<i64>,
}

/// One parsed client line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `#register NAME PASSWORD`
    Register {
        /// Requested user name (validated).
        name: &'a str,
        /// Password (length validated).
        password: &'a str,
    },
    /// `#login NAME PASSWORD`
    Login {
        /// User name (validated).
        name: &'a str,
        /// Password as sent.
        password: &'a str,
    },
    /// `#join ROOM` (the room name is folded to lower case).
    Join {
        /// Canonical (lower-case) room name.
        room: String,
    },
    /// `#leave`
    Leave,
    /// `#users`
    Users,
    /// `#rooms`
    Rooms,
    /// `#all_messages [LIMIT] [BEFORE_ID]`
    AllMessages(Page),
    /// `#my_messages [LIMIT] [BEFORE_ID]`
    MyMessages(Page),
    /// `#ping`
    Ping,
    /// `#health`
    Health,
    /// `#stats`
    Stats,
    /// `#help`
    Help,
    /// `#quit`
    Quit,
    /// A chat line (anything not starting with `#`; `##x` sends `#x`).
    Say(&'a str),
}

impl<'a> Request<'a> {
    /// Parses one line (without its line ending). Blank lines give `Ok(None)`.
    pub fn parse(line: &'a str) -> Result<Option<Request<'a>>, ProtoError> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        let Some(command) = line.strip_prefix('#') else {
            return Ok(Some(Request::Say(line)));
        };
        if command.starts_with('#') {
            return Ok(Some(Request::Say(command)));
        }
        let mut words = command.split(' ').filter(|w| !w.is_empty());
        let verb = words.next().unwrap_or("");
        let args: Vec<&'a str> = words.collect();
        let request = match verb.to_ascii_lowercase().as_str() {
            "register" => {
                let [name, password] = exact::<2>(&args, "#register NAME PASSWORD")?;
                validate_name(name)?;
                validate_password(password)?;
                Request::Register { name, password }
            }
            "login" => {
                let [name, password] = exact::<2>(&args, "#login NAME PASSWORD")?;
                validate_name(name)?;
                Request::Login { name, password }
            }
            "join" => {
                let [room] = exact::<1>(&args, "#join ROOM")?;
                validate_name(room)?;
                Request::Join {
                    room: room.to_ascii_lowercase(),
                }
            }
            "leave" => no_args(&args, "#leave", Request::Leave)?,
            "users" => no_args(&args, "#users", Request::Users)?,
            "rooms" => no_args(&args, "#rooms", Request::Rooms)?,
            "all_messages" => {
                Request::AllMessages(parse_page(&args, "#all_messages [LIMIT] [BEFORE_ID]")?)
            }
            "my_messages" => {
                Request::MyMessages(parse_page(&args, "#my_messages [LIMIT] [BEFORE_ID]")?)
            }
            "ping" => no_args(&args, "#ping", Request::Ping)?,
            "health" => no_args(&args, "#health", Request::Health)?,
            "stats" => no_args(&args, "#stats", Request::Stats)?,
            "help" => no_args(&args, "#help", Request::Help)?,
            "quit" => no_args(&args, "#quit", Request::Quit)?,
            _ => {
                return Err(ProtoError::new(
                    ErrCode::Unknown,
                    "no such command, #help lists them",
                ));
            }
        };
        Ok(Some(request))
    }

    /// The request as a line a client would send (without line ending). Parsing it gives back
    /// an equal request.
    pub fn to_line(&self) -> String {
        let page = |verb: &str, p: &Page| match p.before {
            Some(b) => format!("#{verb} {} {b}", p.limit),
            None => format!("#{verb} {}", p.limit),
        };
        match self {
            Request::Register { name, password } => format!("#register {name} {password}"),
            Request::Login { name, password } => format!("#login {name} {password}"),
            Request::Join { room } => format!("#join {room}"),
            Request::Leave => "#leave".into(),
            Request::Users => "#users".into(),
            Request::Rooms => "#rooms".into(),
            Request::AllMessages(p) => page("all_messages", p),
            Request::MyMessages(p) => page("my_messages", p),
            Request::Ping => "#ping".into(),
            Request::Health => "#health".into(),
            Request::Stats => "#stats".into(),
            Request::Help => "#help".into(),
            Request::Quit => "#quit".into(),
            Request::Say(text) if text.starts_with('#') => format!("#{text}"),
            Request::Say(text) => text.to_string(),
        }
    }

    /// Whether this request takes a token from the user's message rate limit: chat lines and
    /// the verbs that make the server read or write the database.
    pub fn is_rate_limited(&self) -> bool {
        matches!(
            self,
            Request::Say(_)
                | Request::Join { .. }
                | Request::AllMessages(_)
                | Request::MyMessages(_)
        )
    }

    /// Whether this request is allowed before logging in.
    pub fn allowed_as_guest(&self) -> bool {
        matches!(
            self,
            Request::Register { .. }
                | Request::Login { .. }
                | Request::Ping
                | Request::Health
                | Request::Help
                | Request::Quit
        )
    }
}

fn usage(form: &str) -> ProtoError {
    ProtoError::new(ErrCode::Usage, format!("usage: {form}"))
}

fn exact<'a, const N: usize>(args: &[&'a str], form: &str) -> Result<[&'a str; N], ProtoError> {
    <[&'a str; N]>::try_from(args).map_err(|_| usage(form))
}

fn no_args<'a>(args: &[&str], form: &str, r: Request<'a>) -> Result<Request<'a>, ProtoError> {
    if args.is_empty() {
        Ok(r)
    } else {
        Err(usage(form))
    }
}

fn parse_page(args: &[&str], form: &str) -> Result<Page, ProtoError> {
    if args.len() > 2 {
        return Err(usage(form));
    }
    let limit = match args.first() {
        None => HISTORY_DEFAULT_LIMIT,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=HISTORY_MAX_LIMIT).contains(&n) && is_digits(s) => n,
            _ => {
                return Err(ProtoError::new(
                    ErrCode::Usage,
                    format!("LIMIT must be 1 to {HISTORY_MAX_LIMIT}; usage: {form}"),
                ));
            }
        },
    };
    let before = match args.get(1) {
        None => None,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 1 && is_digits(s) => Some(n),
            _ => {
                return Err(ProtoError::new(
                    ErrCode::Usage,
                    format!("BEFORE_ID must be a positive message id; usage: {form}"),
                ));
            }
        },
    };
    Ok(Page { limit, before })
}

fn is_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// Cleans an inbound line before parsing: drops a leading byte-order mark and every control
/// character except TAB (C0, DEL and C1), so no client can put terminal escape sequences on
/// other users' screens. Borrowed when there is nothing to remove.
pub fn sanitize(line: &str) -> Cow<'_, str> {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    if line.chars().any(is_stripped) {
        Cow::Owned(line.chars().filter(|c| !is_stripped(*c)).collect())
    } else {
        Cow::Borrowed(line)
    }
}

fn is_stripped(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// Whether a first line looks like an HTTP request (`GET / HTTP/1.1` and the like).
pub fn looks_like_http(line: &str) -> bool {
    const METHODS: [&str; 9] = [
        "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "TRACE",
    ];
    let mut words = line.split(' ');
    let (Some(method), Some(_target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return false;
    };
    METHODS.contains(&method) && version.starts_with("HTTP/")
}

/// Checks a user or room name against `[A-Za-z0-9_-]{1,32}`.
pub fn validate_name(name: &str) -> Result<(), ProtoError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ProtoError::new(
            ErrCode::BadName,
            format!("names are 1 to {NAME_MAX} of A-Z a-z 0-9 _ -"),
        ))
    }
}

/// Checks a new password's length: [`PASSWORD_MIN`] to [`PASSWORD_MAX`] bytes.
pub fn validate_password(password: &str) -> Result<(), ProtoError> {
    if (PASSWORD_MIN..=PASSWORD_MAX).contains(&password.len()) {
        Ok(())
    } else {
        Err(ProtoError::new(
            ErrCode::BadPass,
            format!("passwords are {PASSWORD_MIN} to {PASSWORD_MAX} bytes"),
        ))
    }
}

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
    /// `ROOM NAME N`
    Room {
        /// Room name.
        room: &'a str,
        /// Distinct users in it.
        count: usize,
    },
    /// `HIST ID TIME ROOM NAME TEXT`
    Hist(&'a HistRow),
    /// `STATS key=value ...`
    Stats(&'a Stats),
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
            Reply::Join { room, name, count } => write!(buf, "JOIN {room} {name} {count}"),
            Reply::Leave { room, name, count } => write!(buf, "LEAVE {room} {name} {count}"),
            Reply::Users { room, names } => {
                let _ = write!(buf, "USERS {room} {}", names.len());
                for n in names.iter() {
                    buf.put_u8(b' ');
                    buf.put_slice(n.as_bytes());
                }
                Ok(())
            }
            Reply::Rooms(n) => write!(buf, "ROOMS {n}"),
            Reply::Room { room, count } => write!(buf, "ROOM {room} {count}"),
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
            Reply::Hist(h) => write!(
                buf,
                "HIST {} {} {} {} {}",
                h.id, h.time, h.room, h.name, h.text
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

/// The `INFO` lines sent on connect.
pub fn greeting() -> Vec<String> {
    vec![
        format!("linechat {} ready", env!("CARGO_PKG_VERSION")),
        "#register NAME PASSWORD to make an account, #login NAME PASSWORD to log in, #help for all commands".to_string(),
    ]
}

/// The `INFO` lines `#help` sends: one per verb.
pub const HELP: &[&str] = &[
    "#register NAME PASSWORD   make an account and log in (password 8 to 72 bytes)",
    "#login NAME PASSWORD      log in",
    "#join ROOM                enter ROOM (leaving the current one) and see its recent messages",
    "#leave                    leave the current room",
    "TEXT                      say TEXT in the current room (start with ## to say a line starting with #)",
    "#users                    who is in the current room",
    "#rooms                    rooms with users online",
    "#all_messages [LIMIT] [BEFORE_ID]   messages you sent, in every room",
    "#my_messages [LIMIT] [BEFORE_ID]    messages of every room you have joined",
    "#ping                     PONG",
    "#health                   OK health if the server and its database answer",
    "#stats                    server statistics (logged in)",
    "#help                     this list",
    "#quit                     close the connection",
];

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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(r: Reply) -> String {
        String::from_utf8(r.to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn parses_every_verb() {
        assert_eq!(
            Request::parse("#register alice s3cret-pass").unwrap(),
            Some(Request::Register {
                name: "alice",
                password: "s3cret-pass"
            })
        );
        assert_eq!(
            Request::parse("#login Bob hunter22-pass").unwrap(),
            Some(Request::Login {
                name: "Bob",
                password: "hunter22-pass"
            })
        );
        assert_eq!(
            Request::parse("#join General").unwrap(),
            Some(Request::Join {
                room: "general".into()
            })
        );
        assert_eq!(Request::parse("#leave").unwrap(), Some(Request::Leave));
        assert_eq!(Request::parse("#USERS").unwrap(), Some(Request::Users));
        assert_eq!(Request::parse("#rooms").unwrap(), Some(Request::Rooms));
        assert_eq!(Request::parse("#ping").unwrap(), Some(Request::Ping));
        assert_eq!(Request::parse("#help").unwrap(), Some(Request::Help));
        assert_eq!(Request::parse("#quit").unwrap(), Some(Request::Quit));
        assert_eq!(
            Request::parse("#all_messages").unwrap(),
            Some(Request::AllMessages(Page {
                limit: 100,
                before: None
            }))
        );
        assert_eq!(
            Request::parse("#my_messages 5 42").unwrap(),
            Some(Request::MyMessages(Page {
                limit: 5,
                before: Some(42)
            }))
        );
    }

    #[test]
    fn chat_lines_are_verbatim() {
        assert_eq!(
            Request::parse("  hello  bob ").unwrap(),
            Some(Request::Say("  hello  bob "))
        );
        assert_eq!(
            Request::parse("##hashtag").unwrap(),
            Some(Request::Say("#hashtag"))
        );
        assert_eq!(Request::parse("").unwrap(), None);
        assert_eq!(Request::parse("   ").unwrap(), None);
    }

    #[test]
    fn rejects_bad_input_with_codes() {
        let code = |l: &str| Request::parse(l).unwrap_err().code;
        assert_eq!(code("#frobnicate"), ErrCode::Unknown);
        assert_eq!(code("#"), ErrCode::Unknown);
        assert_eq!(code("#register alice"), ErrCode::Usage);
        assert_eq!(code("#register alice pass word extra"), ErrCode::Usage);
        assert_eq!(code("#register al!ce s3cret-pass"), ErrCode::BadName);
        assert_eq!(code("#register alice short"), ErrCode::BadPass);
        assert_eq!(
            code(&format!("#register alice {}", "p".repeat(73))),
            ErrCode::BadPass
        );
        assert!(Request::parse(&format!("#register alice {}", "p".repeat(72))).is_ok());
        assert_eq!(code(&format!("#join {}", "r".repeat(33))), ErrCode::BadName);
        assert!(Request::parse(&format!("#join {}", "r".repeat(32))).is_ok());
        assert_eq!(code("#leave now"), ErrCode::Usage);
        assert_eq!(code("#all_messages 0"), ErrCode::Usage);
        assert_eq!(code("#all_messages 1001"), ErrCode::Usage);
        assert_eq!(code("#all_messages +5"), ErrCode::Usage);
        assert_eq!(code("#my_messages 10 -1"), ErrCode::Usage);
        assert_eq!(code("#my_messages 10 1 2"), ErrCode::Usage);
    }

    #[test]
    fn sanitize_strips_controls_and_bom() {
        assert!(matches!(
            sanitize("plain\ttext"),
            Cow::Borrowed("plain\ttext")
        ));
        assert_eq!(sanitize("\u{feff}#ping"), "#ping");
        assert_eq!(
            sanitize("red \x1b[31malert\x07\x7f\u{9b}2J"),
            "red [31malert2J"
        );
    }

    #[test]
    fn http_request_lines() {
        assert!(looks_like_http("GET / HTTP/1.1"));
        assert!(looks_like_http("POST /api HTTP/1.0"));
        assert!(!looks_like_http("GET me a coffee"));
        assert!(!looks_like_http("#login alice pass HTTP/1.1"));
    }

    #[test]
    fn guest_verbs() {
        assert!(Request::Ping.allowed_as_guest());
        assert!(!Request::Users.allowed_as_guest());
        assert!(!Request::Say("x").allowed_as_guest());
    }

    #[test]
    fn formats_every_reply() {
        assert_eq!(line(Reply::Info("hi there")), "INFO hi there\r\n");
        assert_eq!(line(Reply::Ok("leave", "general")), "OK leave general\r\n");
        assert_eq!(line(Reply::Ok("quit", "")), "OK quit\r\n");
        assert_eq!(
            line(Reply::Err(ErrCode::NoRoom, "join a room first")),
            "ERR noroom join a room first\r\n"
        );
        assert_eq!(line(Reply::Pong), "PONG\r\n");
        assert_eq!(
            line(Reply::Msg {
                room: "general",
                name: "alice",
                text: " hi  bob"
            }),
            "MSG general alice  hi  bob\r\n"
        );
        assert_eq!(
            line(Reply::Join {
                room: "g",
                name: "bob",
                count: 2
            }),
            "JOIN g bob 2\r\n"
        );
        assert_eq!(
            line(Reply::Leave {
                room: "g",
                name: "bob",
                count: 1
            }),
            "LEAVE g bob 1\r\n"
        );
        assert_eq!(
            line(Reply::Users {
                room: "g",
                names: &["alice", "bob"]
            }),
            "USERS g 2 alice bob\r\n"
        );
        assert_eq!(line(Reply::Rooms(3)), "ROOMS 3\r\n");
        let st = Stats {
            uptime: 5,
            connections: 3,
            sessions: 2,
            users: 2,
            rooms: 1,
            messages: 40,
            delivered_per_sec: 1.25,
            sendq_max: 0,
            writer_queue: 0,
            actor_queue: 1,
        };
        assert_eq!(
            line(Reply::Stats(&st)),
            "STATS uptime=5 connections=3 sessions=2 users=2 rooms=1 messages=40 \
             delivered_per_sec=1.2 sendq_max=0 writer_queue=0 actor_queue=1\r\n"
        );
        assert_eq!(
            line(Reply::Room {
                room: "g",
                count: 4
            }),
            "ROOM g 4\r\n"
        );
        let h = HistRow {
            id: 7,
            time: "2026-11-29T02:40:19.123Z".into(),
            room: "g".into(),
            name: "bob".into(),
            text: "yo".into(),
        };
        assert_eq!(
            line(Reply::Hist(&h)),
            "HIST 7 2026-11-29T02:40:19.123Z g bob yo\r\n"
        );
    }

    #[test]
    fn welcome_caps_the_name_list() {
        assert_eq!(
            welcome("g", &["alice", "bob"]),
            "welcome to g; here now (2): alice bob"
        );
        let many: Vec<String> = (0..25).map(|i| format!("u{i}")).collect();
        let refs: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        let w = welcome("g", &refs);
        assert!(w.starts_with("welcome to g; here now (25): u0 u1"));
        assert!(w.ends_with("u19 and 5 more"));
    }

    #[test]
    fn protocol_md_lists_every_error_code_and_verb() {
        let doc = include_str!("../protocol.md");
        for c in ErrCode::ALL {
            assert!(
                doc.contains(&format!("| `{c}` |")),
                "{c} missing from protocol.md's table"
            );
        }
        for line in HELP {
            let verb = line.split(' ').next().unwrap();
            if verb.starts_with('#') {
                assert!(
                    doc.contains(&format!("### `{verb}")),
                    "{verb} has no section"
                );
            }
        }
    }

    #[test]
    fn error_codes_are_lower_case_words() {
        for c in ErrCode::ALL {
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            );
        }
    }
}
