//! Client lines: cleaning, framing-level checks, and parsing into [`Request`]s.

pub use super::args::{Page, validate_name, validate_password};
use super::sanction::{Target, parse_duration, parse_target};
pub use super::verb::{Verb, VerbSpec};
use super::{ErrCode, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, ProtoError};
use std::borrow::Cow;
use std::time::Duration;

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
    /// `#password OLD NEW`
    Password {
        /// The current password, as sent.
        old: &'a str,
        /// The new one (length validated).
        new: &'a str,
    },
    /// `#kick NAME [REASON]`
    Kick {
        /// The account whose sessions are closed (validated).
        name: &'a str,
        /// Why, verbatim (may be empty).
        reason: &'a str,
    },
    /// `#modlog [LIMIT]`: the newest LIMIT actions.
    Modlog(u32),
    /// `#ban NAME|ADDRESS[/BITS] [DURATION] [REASON]`
    Ban {
        /// The account or network.
        target: Target<'a>,
        /// How long; `None` is for good.
        duration: Option<Duration>,
        /// Why, verbatim (may be empty).
        reason: &'a str,
    },
    /// `#unban NAME|ADDRESS[/BITS]`
    Unban(Target<'a>),
    /// `#mute NAME [DURATION] [REASON]`
    Mute {
        /// The account (validated).
        name: &'a str,
        /// How long; `None` is for good.
        duration: Option<Duration>,
        /// Why, verbatim (may be empty): for the moderation log.
        reason: &'a str,
    },
    /// `#unmute NAME`
    Unmute(&'a str),
    /// `#delete ID [REASON]`
    Delete {
        /// The message.
        id: i64,
        /// Why, verbatim (may be empty).
        reason: &'a str,
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
    /// `#msg NAME TEXT`
    Msg {
        /// The recipient (validated).
        name: &'a str,
        /// The text: the rest of the line after NAME and its spaces, verbatim.
        text: &'a str,
    },
    /// `#privates NAME [LIMIT] [BEFORE_ID]`: a conversation.
    Privates {
        /// The other party (validated).
        name: &'a str,
        /// Which page.
        page: Page,
    },
    /// `#privates`: the list of this user's conversations.
    Conversations,
    /// `#search WORDS [in=ROOM|in=@NAME] [from=NAME] [LIMIT] [BEFORE_ID]`
    Search {
        /// What followed the verb, as typed.
        text: &'a str,
        /// It parsed.
        query: super::search::Search,
    },
    /// `#me TEXT`: an action in the current room (TEXT as typed).
    Me(&'a str),
    /// `#topic [TEXT]`: the current room's topic, read (`None`) or set (TEXT as typed).
    Topic(Option<&'a str>),
    /// `#whois NAME` (validated)
    Whois(&'a str),
    /// `#ignore NAME` (validated)
    Ignore(&'a str),
    /// `#unignore NAME` (validated)
    Unignore(&'a str),
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
        let Some(verb) = Verb::named(verb) else {
            return Err(ProtoError::new(
                ErrCode::Unknown,
                "no such command, #help lists them",
            ));
        };
        let form = verb.spec().form;
        let request = match verb {
            Verb::Register => {
                let [name, password] = exact::<2>(&args, form)?;
                validate_name(name)?;
                validate_password(password)?;
                Request::Register { name, password }
            }
            Verb::Login => {
                let [name, password] = exact::<2>(&args, form)?;
                validate_name(name)?;
                Request::Login { name, password }
            }
            Verb::Password => {
                let [old, new] = exact::<2>(&args, form)?;
                validate_password(new)?;
                Request::Password { old, new }
            }
            Verb::Join => {
                let [room] = exact::<1>(&args, form)?;
                validate_name(room)?;
                Request::Join {
                    room: room.to_ascii_lowercase(),
                }
            }
            Verb::AllMessages => Request::AllMessages(parse_page(&args, form)?),
            Verb::MyMessages => Request::MyMessages(parse_page(&args, form)?),
            Verb::Msg => {
                let Some(name) = args.first().copied() else {
                    return Err(usage(form));
                };
                validate_name(name)?;
                // The text as typed: after NAME and the spaces that follow it, to the end.
                let after_verb = command.trim_start_matches(|c| c != ' ');
                let text = after_verb
                    .trim_start_matches(' ')
                    .trim_start_matches(|c| c != ' ')
                    .trim_start_matches(' ');
                if text.is_empty() {
                    return Err(usage(form));
                }
                Request::Msg { name, text }
            }
            Verb::Topic => {
                let text = command
                    .trim_start_matches(|c| c != ' ')
                    .trim_start_matches(' ');
                Request::Topic((!text.trim().is_empty()).then_some(text))
            }
            Verb::Whois => {
                let [name] = exact::<1>(&args, form)?;
                validate_name(name)?;
                Request::Whois(name)
            }
            Verb::Me => {
                let text = command
                    .trim_start_matches(|c| c != ' ')
                    .trim_start_matches(' ');
                if text.trim().is_empty() {
                    return Err(usage(form));
                }
                Request::Me(text)
            }
            Verb::Search => {
                let text = rest_after(command, 0);
                Request::Search {
                    text,
                    query: super::search::parse(text)?,
                }
            }
            Verb::Ignore | Verb::Unignore => {
                let [name] = exact::<1>(&args, form)?;
                validate_name(name)?;
                if verb == Verb::Ignore {
                    Request::Ignore(name)
                } else {
                    Request::Unignore(name)
                }
            }
            Verb::Privates => {
                let Some(name) = args.first().copied() else {
                    return Ok(Some(Request::Conversations));
                };
                validate_name(name)?;
                Request::Privates {
                    name,
                    page: parse_page(&args[1..], form)?,
                }
            }
            Verb::Leave => no_args(&args, form, Request::Leave)?,
            Verb::Users => no_args(&args, form, Request::Users)?,
            Verb::Rooms => no_args(&args, form, Request::Rooms)?,
            Verb::Ping => no_args(&args, form, Request::Ping)?,
            Verb::Health => no_args(&args, form, Request::Health)?,
            Verb::Stats => no_args(&args, form, Request::Stats)?,
            Verb::Help => no_args(&args, form, Request::Help)?,
            Verb::Quit => no_args(&args, form, Request::Quit)?,
            Verb::Modlog => match args.as_slice() {
                [] => Request::Modlog(super::MODLOG_DEFAULT_LIMIT),
                [n] if is_digits(n) => match n.parse::<u32>() {
                    Ok(v @ 1..=HISTORY_MAX_LIMIT) => Request::Modlog(v),
                    _ => return Err(usage(form)),
                },
                _ => return Err(usage(form)),
            },
            Verb::Kick => {
                let Some(name) = args.first().copied() else {
                    return Err(usage(form));
                };
                validate_name(name)?;
                // The reason is the rest of the line, as typed.
                let reason = rest_after(command, 1);
                Request::Kick { name, reason }
            }
            Verb::Ban => {
                let Some(target) = args.first().copied() else {
                    return Err(usage(form));
                };
                let target = parse_target(target)?;
                let duration = args.get(1).and_then(|w| parse_duration(w));
                let reason = rest_after(command, 1 + usize::from(duration.is_some()));
                Request::Ban {
                    target,
                    duration,
                    reason,
                }
            }
            Verb::Unban => {
                let [target] = exact::<1>(&args, form)?;
                Request::Unban(parse_target(target)?)
            }
            Verb::Mute => {
                let Some(name) = args.first().copied() else {
                    return Err(usage(form));
                };
                validate_name(name)?;
                let duration = args.get(1).and_then(|w| parse_duration(w));
                let reason = rest_after(command, 1 + usize::from(duration.is_some()));
                Request::Mute {
                    name,
                    duration,
                    reason,
                }
            }
            Verb::Unmute => {
                let [name] = exact::<1>(&args, form)?;
                validate_name(name)?;
                Request::Unmute(name)
            }
            Verb::Delete => {
                let id = match args.first() {
                    Some(w) if is_digits(w) => w.parse::<i64>().map_err(|_| usage(form))?,
                    _ => return Err(usage(form)),
                };
                if id < 1 {
                    return Err(usage(form));
                }
                Request::Delete {
                    id,
                    reason: rest_after(command, 1),
                }
            }
            // `Verb::named` never names chat lines.
            Verb::Say => Request::Say(line),
        };
        Ok(Some(request))
    }

    /// Which verb this is.
    pub fn verb(&self) -> Verb {
        match self {
            Request::Register { .. } => Verb::Register,
            Request::Login { .. } => Verb::Login,
            Request::Password { .. } => Verb::Password,
            Request::Join { .. } => Verb::Join,
            Request::Leave => Verb::Leave,
            Request::Users => Verb::Users,
            Request::Rooms => Verb::Rooms,
            Request::AllMessages(_) => Verb::AllMessages,
            Request::MyMessages(_) => Verb::MyMessages,
            Request::Msg { .. } => Verb::Msg,
            Request::Privates { .. } | Request::Conversations => Verb::Privates,
            Request::Search { .. } => Verb::Search,
            Request::Me(_) => Verb::Me,
            Request::Topic(_) => Verb::Topic,
            Request::Whois(_) => Verb::Whois,
            Request::Ignore(_) => Verb::Ignore,
            Request::Unignore(_) => Verb::Unignore,
            Request::Ping => Verb::Ping,
            Request::Health => Verb::Health,
            Request::Stats => Verb::Stats,
            Request::Help => Verb::Help,
            Request::Quit => Verb::Quit,
            Request::Kick { .. } => Verb::Kick,
            Request::Modlog(_) => Verb::Modlog,
            Request::Ban { .. } => Verb::Ban,
            Request::Unban(_) => Verb::Unban,
            Request::Mute { .. } => Verb::Mute,
            Request::Unmute(_) => Verb::Unmute,
            Request::Delete { .. } => Verb::Delete,
            Request::Say(_) => Verb::Say,
        }
    }

    /// The request as a line a client would send (without line ending). Parsing it gives back
    /// an equal request.
    pub fn to_line(&self) -> String {
        let name = self.verb().spec().name;
        let page = |p: &Page| match p.before {
            Some(b) => format!("#{name} {} {b}", p.limit),
            None => format!("#{name} {}", p.limit),
        };
        match self {
            Request::Register { name, password } => format!("#register {name} {password}"),
            Request::Login { name, password } => format!("#login {name} {password}"),
            Request::Password { old, new } => format!("#password {old} {new}"),
            Request::Modlog(n) => format!("#modlog {n}"),
            Request::Kick { name, reason: "" } => format!("#kick {name}"),
            Request::Kick { name, reason } => format!("#kick {name} {reason}"),
            Request::Ban {
                target,
                duration,
                reason,
            } => with_rest(format!("#ban {}", target.text()), *duration, reason),
            Request::Unban(target) => format!("#unban {}", target.text()),
            Request::Mute {
                name,
                duration,
                reason,
            } => with_rest(format!("#mute {name}"), *duration, reason),
            Request::Unmute(name) => format!("#unmute {name}"),
            Request::Delete { id, reason } => with_rest(format!("#delete {id}"), None, reason),
            Request::Join { room } => format!("#join {room}"),
            Request::AllMessages(p) | Request::MyMessages(p) => page(p),
            Request::Msg { name, text } => format!("#msg {name} {text}"),
            Request::Search { text, .. } => format!("#search {text}"),
            Request::Me(text) => format!("#me {text}"),
            Request::Topic(Some(text)) => format!("#topic {text}"),
            Request::Whois(name) => format!("#whois {name}"),
            Request::Ignore(name) => format!("#ignore {name}"),
            Request::Unignore(name) => format!("#unignore {name}"),
            Request::Privates { name, page: p } => match p.before {
                Some(b) => format!("#privates {name} {} {b}", p.limit),
                None => format!("#privates {name} {}", p.limit),
            },
            Request::Say(text) if text.starts_with('#') => format!("#{text}"),
            Request::Say(text) => text.to_string(),
            _ => format!("#{name}"),
        }
    }

    /// Whether this request takes a token from the user's message rate limit.
    pub fn is_rate_limited(&self) -> bool {
        self.verb().spec().rate_limited
    }

    /// Whether this request is allowed before logging in.
    pub fn allowed_as_guest(&self) -> bool {
        self.verb().spec().guest
    }
}

/// What follows the verb and `words` more words of `command` (the line after `#`), trimmed:
/// a reason, as typed.
fn rest_after(command: &str, words: usize) -> &str {
    let mut rest = command;
    for _ in 0..=words {
        rest = rest
            .trim_start_matches(' ')
            .trim_start_matches(|c| c != ' ');
    }
    rest.trim()
}

/// `line`, then a duration (in seconds, which parses back the same) and a reason if given.
fn with_rest(mut line: String, duration: Option<Duration>, reason: &str) -> String {
    if let Some(d) = duration {
        line.push_str(&format!(" {}s", d.as_secs()));
    }
    if !reason.is_empty() {
        line.push(' ');
        line.push_str(reason);
    }
    line
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

/// Cleans an inbound line before parsing, so no client can put terminal escape sequences on
/// other users' screens, forge a line break, or hide what its text says:
/// - a leading byte-order mark is dropped;
/// - control characters (C0 but TAB, DEL, C1; NUL included) are removed;
/// - U+2028 and U+2029 (line and paragraph separators: one line to the server, two to a client
///   that splits lines the Unicode way) become a space;
/// - bidirectional embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069) are
///   removed: they reorder what follows (`gnp.exe` shown as `exe.png`);
/// - zero-width characters are removed (U+200B, U+2060, U+FEFF), and so are the joiners
///   U+200C and U+200D unless they sit between two visible characters (emoji sequences and
///   scripts that need them keep them).
///
/// Borrowed when there is nothing to change. A line of only such characters is empty after
/// this, and ignored like a blank one.
pub fn sanitize(line: &str) -> Cow<'_, str> {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    if !line.chars().any(|c| is_stripped(c) || is_suspect(c)) {
        return Cow::Borrowed(line);
    }
    let chars: Vec<char> = line.chars().filter(|c| !is_stripped(*c)).collect();
    let mut out = String::with_capacity(line.len());
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\u{2028}' | '\u{2029}' => out.push(' '),
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {}
            '\u{200b}' | '\u{2060}' | '\u{feff}' => {}
            '\u{200c}' | '\u{200d}' => {
                let visible =
                    |c: Option<&char>| c.is_some_and(|c| !c.is_whitespace() && !is_suspect(*c));
                if i > 0 && visible(chars.get(i - 1)) && visible(chars.get(i + 1)) {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_stripped(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// The invisible or reordering characters [`sanitize`] replaces or removes.
fn is_suspect(c: char) -> bool {
    matches!(
        c,
        '\u{2028}' | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200b}'..='\u{200d}'
            | '\u{2060}'
            | '\u{feff}'
    )
}

/// Whether a line holds a control character (before [`sanitize`] removes it): a password with
/// one is refused, not silently shortened.
pub fn has_control(line: &str) -> bool {
    line.chars().any(is_stripped)
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
