//! The line client's screen, pure: parsing server lines ([`ServerLine`]) and turning them into
//! what a person reads (`[14:02] alice: hi`, `--> bob joined general (3 users)`), with or without
//! colour.

use crate::protocol::ServerLine;
use crate::protocol::server_line::split2;
use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Local};

/// How to draw lines.
#[derive(Debug, Clone)]
pub struct Screen {
    /// The logged-in user's name: their messages are marked.
    pub me: String,
    /// ANSI colours on (a terminal, and `NO_COLOR` unset).
    pub color: bool,
}

const TIME: Style = Style::new().dimmed();
const ME: Style = Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));
const NAME: Style = Style::new().bold();
const PRESENCE: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Cyan)));
const NOTICE: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));
const ERROR: Style = Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));

fn users(n: &str) -> String {
    if n == "1" {
        "1 user".to_string()
    } else {
        format!("{n} users")
    }
}

/// `HH:MM` in local time of an RFC 3339 timestamp (as `HIST` carries), or the text unchanged.
pub fn local_hhmm(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&Local).format("%H:%M").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

impl Screen {
    fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    fn chat(&self, hhmm: &str, name: &str, text: &str) -> String {
        let who = if name.eq_ignore_ascii_case(&self.me) {
            self.paint(ME, &format!("{name} (you)"))
        } else {
            self.paint(NAME, name)
        };
        format!("{} {who}: {text}", self.paint(TIME, &format!("[{hhmm}]")))
    }

    /// An action: `[HH:MM] * name text`.
    fn action(&self, hhmm: &str, name: &str, text: &str) -> String {
        let who = if name.eq_ignore_ascii_case(&self.me) {
            self.paint(ME, name)
        } else {
            self.paint(NAME, name)
        };
        format!("{} * {who} {text}", self.paint(TIME, &format!("[{hhmm}]")))
    }

    /// A private message: `[HH:MM] *from -> to* text`, in the notice colour, so it stands out
    /// from the room's lines.
    fn private(&self, hhmm: &str, from: &str, to: &str, text: &str) -> String {
        let who = self.paint(NOTICE, &format!("*{from} -> {to}*"));
        format!("{} {who} {text}", self.paint(TIME, &format!("[{hhmm}]")))
    }

    /// The screen line for a server line; `now` is the local `HH:MM` used for live messages.
    /// `None` for lines a person need not see.
    pub fn render(&self, line: &str, now: &str) -> Option<String> {
        Some(match ServerLine::parse(line) {
            ServerLine::Msg(_, name, text) => self.chat(now, name, text),
            ServerLine::Priv(from, to, text) => self.private(now, from, to, text),
            ServerLine::Privates(n) => {
                self.paint(NOTICE, &format!("-!- {n} private conversations"))
            }
            ServerLine::Private(name, unread) => self.paint(
                NOTICE,
                &format!("-!-   with {name}: {unread} new (/privates {name})"),
            ),
            ServerLine::Action(_, name, text) => self.action(now, name, text),
            ServerLine::Hist {
                time,
                room,
                name,
                text,
                ..
            } => {
                let hhmm = local_hhmm(time);
                match (room.strip_prefix('@'), name.strip_prefix('*')) {
                    // A private message from history: `@PEER` is the other party.
                    (Some(peer), _) if name.eq_ignore_ascii_case(&self.me) => {
                        self.private(&hhmm, name, peer, text)
                    }
                    (Some(_), _) => self.private(&hhmm, name, &self.me, text),
                    (None, Some(name)) => self.action(&hhmm, name, text),
                    (None, None) => self.chat(&hhmm, name, text),
                }
            }
            ServerLine::Join(room, name, n) => self.paint(
                PRESENCE,
                &format!("--> {name} joined {room} ({})", users(n)),
            ),
            ServerLine::Leave(room, name, n) => {
                self.paint(PRESENCE, &format!("<-- {name} left {room} ({})", users(n)))
            }
            ServerLine::Deleted(room, id, name) => self.paint(
                NOTICE,
                &format!("-!- a message by {name} in {room} was removed (id {id})"),
            ),
            ServerLine::Ok("join", args) => {
                let (room, n) = split2(args);
                self.paint(PRESENCE, &format!("--> you joined {room} ({})", users(n)))
            }
            ServerLine::Ok("leave", room) => self.paint(PRESENCE, &format!("<-- you left {room}")),
            ServerLine::Ok("login" | "register", name) => {
                self.paint(NOTICE, &format!("-!- logged in as {name}"))
            }
            ServerLine::Ok("all_messages" | "my_messages", n) => {
                self.paint(NOTICE, &format!("-!- {n} messages"))
            }
            ServerLine::Ok("search", n) => self.paint(NOTICE, &format!("-!- {n} found")),
            ServerLine::Ok("quit", _) => return None,
            ServerLine::Ok(verb, args) => {
                self.paint(NOTICE, format!("-!- {verb} {args}").trim_end())
            }
            // A returning user's join replay: what they had seen, this line, what they missed.
            ServerLine::Info(text) if text.contains(" since you were last here") => {
                let (count, rest) = text.split_once(" in ").unwrap_or((text, ""));
                let more = rest.split_once("; ").map_or("", |(_, more)| more);
                let line = match more {
                    "" => format!("— new since you were last here ({count}) —"),
                    more => format!("— new since you were last here ({count}; {more}) —"),
                };
                self.paint(NOTICE, &line)
            }
            ServerLine::Info(text) => self.paint(NOTICE, &format!("-!- {text}")),
            ServerLine::Err(code, text) => self.paint(ERROR, &format!("!!! {text} ({code})")),
            ServerLine::Pong => self.paint(NOTICE, "-!- pong"),
            ServerLine::Users(room, n, names) => {
                self.paint(NOTICE, &format!("-!- in {room} ({}): {names}", users(n)))
            }
            ServerLine::Rooms(n) => self.paint(NOTICE, &format!("-!- {n} rooms with users online")),
            ServerLine::Room(room, n, "") => {
                self.paint(NOTICE, &format!("-!-   {room} ({})", users(n)))
            }
            ServerLine::Room(room, n, topic) => {
                self.paint(NOTICE, &format!("-!-   {room} ({}): {topic}", users(n)))
            }
            ServerLine::Topic(room, by, at, text) => self.paint(
                NOTICE,
                &format!(
                    "-!- topic of {room}: {text} (set by {by}, {})",
                    local_hhmm(at)
                ),
            ),
            ServerLine::Whois(name, since, rest) => {
                let now = match rest.split_once(' ') {
                    Some(("away", "unknown")) => "away (last seen: unknown)".to_string(),
                    Some(("away", when)) => format!("last seen {when}"),
                    Some(("online", rooms)) => format!("online in {rooms}"),
                    _ if rest == "online" => "online, in no room".to_string(),
                    _ => rest.to_string(),
                };
                self.paint(NOTICE, &format!("-!- {name}: registered {since}, {now}"))
            }
            ServerLine::Stats(s) => self.paint(NOTICE, &format!("-!- stats: {s}")),
            ServerLine::Modlog {
                time,
                actor,
                action,
                target,
                reason,
                ..
            } => self.paint(
                NOTICE,
                format!(
                    "-!- [{}] {actor} {action} {target} {reason}",
                    local_hhmm(time)
                )
                .trim_end(),
            ),
            ServerLine::Other(l) => l.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Screen {
        Screen {
            me: "alice".into(),
            color: false,
        }
    }

    #[test]
    fn parses_server_lines() {
        assert_eq!(
            ServerLine::parse("MSG g bob hi  there"),
            ServerLine::Msg("g", "bob", "hi  there")
        );
        assert_eq!(ServerLine::parse("OK quit"), ServerLine::Ok("quit", ""));
        assert_eq!(
            ServerLine::parse("ERR auth wrong name or password"),
            ServerLine::Err("auth", "wrong name or password")
        );
        assert_eq!(
            ServerLine::parse("USERS g 0"),
            ServerLine::Users("g", "0", "")
        );
        assert_eq!(ServerLine::parse("MSG g"), ServerLine::Other("MSG g"));
        assert_eq!(
            ServerLine::parse("NEWTHING x"),
            ServerLine::Other("NEWTHING x")
        );
    }

    #[test]
    fn renders_chat_presence_and_errors() {
        let s = plain();
        // History: a private message each way, an action.
        let hist = |l: &str| s.render(l, "").unwrap();
        assert!(
            hist("HIST 3 2026-12-02T10:00:00.000Z @bob bob psst").ends_with(" *bob -> alice* psst")
        );
        assert!(
            hist("HIST 4 2026-12-02T10:00:00.000Z @bob alice hi").ends_with(" *alice -> bob* hi")
        );
        assert!(hist("HIST 5 2026-12-02T10:00:00.000Z g *bob waves").ends_with(" * bob waves"));
        assert_eq!(
            s.render("INFO 2 new messages in ops since you were last here", "")
                .unwrap(),
            "— new since you were last here (2 new messages) —"
        );
        assert_eq!(
            s.render(
                "INFO 12 new messages in ops since you were last here; the newest 5 follow, the older ones: #my_messages 5 6",
                ""
            )
            .unwrap(),
            "— new since you were last here (12 new messages; the newest 5 follow, the older ones: #my_messages 5 6) —"
        );
        assert_eq!(
            s.render("MSG g bob hi", "14:02").unwrap(),
            "[14:02] bob: hi"
        );
        assert_eq!(
            s.render("MSG g alice hi", "14:02").unwrap(),
            "[14:02] alice (you): hi"
        );
        assert_eq!(
            s.render("JOIN general bob 3", "").unwrap(),
            "--> bob joined general (3 users)"
        );
        assert_eq!(
            s.render("LEAVE general bob 1", "").unwrap(),
            "<-- bob left general (1 user)"
        );
        assert_eq!(
            s.render("OK join general 2", "").unwrap(),
            "--> you joined general (2 users)"
        );
        assert_eq!(
            s.render("ERR noroom you are not in a room", "").unwrap(),
            "!!! you are not in a room (noroom)"
        );
        assert_eq!(s.render("OK quit", ""), None);
        let hist = s
            .render("HIST 7 2026-11-29T02:40:19.123Z g bob yo", "")
            .unwrap();
        assert!(
            hist.starts_with('[') && hist.ends_with("] bob: yo"),
            "{hist}"
        );
        assert_eq!(hist.len(), "[HH:MM] bob: yo".len());
    }

    #[test]
    fn colour_only_when_asked() {
        let c = Screen {
            me: "alice".into(),
            color: true,
        };
        let l = c.render("MSG g bob hi", "14:02").unwrap();
        assert!(l.contains("\x1b["));
        assert!(
            !plain()
                .render("MSG g bob hi", "14:02")
                .unwrap()
                .contains('\x1b')
        );
    }
}
