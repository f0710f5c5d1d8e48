//! The wire protocol, pure: parsing client lines into [`Request`]s, validating names and
//! passwords, formatting every server line ([`Reply`]), and reading server lines back
//! ([`ServerLine`], for the line client). Nothing here does I/O.
//!
//! `protocol.md` is the contract this module implements; every reply form in it is produced by
//! [`Reply::encode`] and nowhere else.
//!
//! - [`args`]: names, passwords and pages, as every verb checks them.
//! - [`error`]: error codes and the texts of `ERR` lines.
//! - [`request`]: client lines -> [`Request`].
//! - [`reply`]: [`Reply`] -> server lines.
//! - [`server_line`]: server lines -> [`ServerLine`].
//! - [`sanction`]: bans and mutes: how long, aimed at what.
//! - [`search`]: `#search`'s words, turned into a full-text query.

pub mod args;
pub mod error;
pub mod reply;
pub mod request;
pub mod sanction;
pub mod search;
pub mod server_line;
pub mod verb;

pub use error::{ErrCode, ProtoError};
pub use reply::{
    HistRow, ModRow, Reply, SHUTTING_DOWN, Stats, Topic, greeting, help_lines, missed_notice,
    unread_notice, welcome,
};
pub use request::{
    Page, Request, Verb, VerbSpec, has_control, looks_like_http, sanitize, validate_name,
    validate_password,
};
pub use server_line::ServerLine;

/// Longest user or room name, in bytes (`[A-Za-z0-9_-]{1,32}`).
pub const NAME_MAX: usize = 32;
/// Shortest accepted password, in bytes.
pub const PASSWORD_MIN: usize = 8;
/// Longest accepted password, in bytes: bcrypt's input limit, so nothing is ever truncated.
pub const PASSWORD_MAX: usize = 72;
/// Rows `#modlog` shows when the admin gives no LIMIT.
pub const MODLOG_DEFAULT_LIMIT: u32 = 20;
/// Page size of `#all_messages` / `#my_messages` when the client gives none.
pub const HISTORY_DEFAULT_LIMIT: u32 = 100;
/// Largest page a client may ask for.
pub const HISTORY_MAX_LIMIT: u32 = 1000;
/// At most this many names are listed in the welcome line on join; the rest are counted.
pub const WELCOME_NAMES_MAX: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn line(r: Reply) -> String {
        String::from_utf8(r.to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn parses_the_moderation_verbs() {
        use sanction::{Target, parse_network};
        use std::time::Duration;
        let net = |s: &str| Target::Network(parse_network(s).unwrap());
        assert_eq!(
            Request::parse("#ban bob 7d  spamming  links ").unwrap(),
            Some(Request::Ban {
                target: Target::Account("bob"),
                duration: Some(Duration::from_secs(7 * 86400)),
                reason: "spamming  links",
            })
        );
        // A second word that is no duration starts the reason; none at all is for good.
        assert_eq!(
            Request::parse("#ban bob 5 times").unwrap(),
            Some(Request::Ban {
                target: Target::Account("bob"),
                duration: None,
                reason: "5 times",
            })
        );
        assert_eq!(
            Request::parse("#ban 203.0.113.77/24").unwrap(),
            Some(Request::Ban {
                target: net("203.0.113.0/24"),
                duration: None,
                reason: "",
            })
        );
        assert_eq!(
            Request::parse("#unban 2001:db8::1").unwrap(),
            Some(Request::Unban(net("2001:db8::1/128")))
        );
        assert_eq!(
            Request::parse("#ban 1.2.3.4/40").unwrap_err().text,
            "1.2.3.4/40 is not an address or a network (203.0.113.7, 203.0.113.0/24, 2001:db8::/32)"
        );
        assert_eq!(
            Request::parse("#ban b@d").unwrap_err().code,
            ErrCode::BadName
        );
        assert_eq!(
            Request::parse("#mute bob 1h30m flood").unwrap(),
            Some(Request::Mute {
                name: "bob",
                duration: Some(Duration::from_secs(5400)),
                reason: "flood",
            })
        );
        assert_eq!(
            Request::parse("#unmute bob").unwrap(),
            Some(Request::Unmute("bob"))
        );
        assert_eq!(
            Request::parse("#delete 42 phishing").unwrap(),
            Some(Request::Delete {
                id: 42,
                reason: "phishing",
            })
        );
        for bad in [
            "#delete",
            "#delete 0",
            "#delete -3",
            "#delete 99999999999999999999",
            "#ban",
            "#unban",
            "#unmute a b",
        ] {
            assert_eq!(
                Request::parse(bad).unwrap_err().code,
                ErrCode::Usage,
                "{bad}"
            );
        }
        assert_eq!(
            Request::parse("#ban bob 90m x").unwrap().unwrap().to_line(),
            "#ban bob 5400s x"
        );
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
                count: 4,
                topic: ""
            }),
            "ROOM g 4\r\n"
        );
        assert_eq!(
            line(Reply::Room {
                room: "g",
                count: 4,
                topic: "no deploys today"
            }),
            "ROOM g 4 no deploys today\r\n"
        );
        assert_eq!(
            line(Reply::Topic {
                room: "g",
                by: "ann",
                at: "2026-12-02T09:00:00.000Z",
                text: "no deploys"
            }),
            "TOPIC g ann 2026-12-02T09:00:00.000Z no deploys\r\n"
        );
        assert_eq!(
            line(Reply::Whois {
                name: "Ann",
                since: "2026-12-01T09:00:00.000Z",
                presence: Ok(&["g", "ops"])
            }),
            "WHOIS Ann 2026-12-01T09:00:00.000Z online g ops\r\n"
        );
        assert_eq!(
            line(Reply::Whois {
                name: "Ann",
                since: "2026-12-01T09:00:00.000Z",
                presence: Err(None)
            }),
            "WHOIS Ann 2026-12-01T09:00:00.000Z away unknown\r\n"
        );
        assert_eq!(
            line(Reply::Action {
                room: "g",
                name: "ann",
                text: "waves"
            }),
            "ACTION g ann waves\r\n"
        );
        let h = HistRow {
            id: 7,
            time: "2026-11-29T02:40:19.123Z".into(),
            room: "g".into(),
            name: "bob".into(),
            text: "yo".into(),
            action: false,
        };
        assert_eq!(
            line(Reply::Hist(&h)),
            "HIST 7 2026-11-29T02:40:19.123Z g bob yo\r\n"
        );
        let act = HistRow { action: true, ..h };
        assert_eq!(
            line(Reply::Hist(&act)),
            "HIST 7 2026-11-29T02:40:19.123Z g *bob yo\r\n"
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
    fn help_comes_from_the_verb_table_aligned() {
        let help = help_lines();
        assert_eq!(help.len(), Verb::ALL.len());
        assert_eq!(
            help[0],
            "#register NAME PASSWORD   make an account and log in (password 8 to 72 bytes)"
        );
        assert_eq!(
            help[5],
            "TEXT                      say TEXT in the current room (start with ## to say a line starting with #)"
        );
        assert_eq!(
            help[12],
            "#my_messages [LIMIT] [BEFORE_ID]    messages of every room you have joined"
        );
        assert_eq!(
            help[13],
            "#msg NAME TEXT            send TEXT to NAME alone (any case), online or not"
        );
        assert_eq!(help[22], "#quit                     close the connection");
        // Every form is set apart from its help, however long.
        for (line, v) in help.iter().zip(Verb::ALL) {
            assert!(line.starts_with(&format!("{}  ", v.spec().form)), "{line}");
        }
        assert_eq!(
            help[14],
            "#privates [NAME [LIMIT] [BEFORE_ID]]  your private messages with NAME, oldest first; alone: your conversations"
        );
        // Every command verb parses under its table name, in any case.
        for v in Verb::ALL {
            if v != Verb::Say {
                assert_eq!(Verb::named(&v.spec().name.to_uppercase()), Some(v));
            }
        }
    }

    /// protocol.md's rate-limit paragraph names exactly the verbs the table limits.
    #[test]
    fn protocol_md_names_the_rate_limited_verbs() {
        let doc = include_str!("../../protocol.md");
        let start = doc.find("The message rate limit applies to").unwrap();
        let limited = &doc[start..];
        let limited = &limited[..limited.find("(the requests").unwrap()];
        let never = &doc[start..];
        let never = &never[never.find("never to").unwrap()..];
        let never = &never[..never.find('.').unwrap()];
        for v in Verb::ALL.into_iter().filter(|v| *v != Verb::Say) {
            let name = format!("`#{}`", v.spec().name);
            if v.spec().rate_limited {
                assert!(limited.contains(&name), "{name} not named as rate limited");
                assert!(!never.contains(&name), "{name} named as never limited");
            } else {
                assert!(!limited.contains(&name), "{name} named as rate limited");
            }
        }
    }

    #[test]
    fn protocol_md_lists_every_error_code_and_verb() {
        let doc = include_str!("../../protocol.md");
        for c in ErrCode::ALL {
            assert!(
                doc.contains(&format!("| `{c}` |")),
                "{c} missing from protocol.md's table"
            );
        }
        for line in help_lines() {
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
