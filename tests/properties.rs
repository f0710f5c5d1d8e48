//! Property tests of the pure parts: arbitrary bytes never panic the codec, sanitizer or
//! parser, and every parsed request formats back to a line that parses to the same request.
use bytes::BytesMut;
use linechat::protocol::{ErrCode, HistRow, ModRow, Reply, Request, ServerLine, sanitize};
use linechat::server::codec::{Line, LineCodec};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn check_line(line: &str) {
    let clean = sanitize(line);
    assert!(!clean.chars().any(|c| c.is_control() && c != '\t'));
    if let Ok(Some(req)) = Request::parse(&clean) {
        let again = req.to_line();
        assert_eq!(Request::parse(&again), Ok(Some(req.clone())), "{again:?}");
    }
}

/// Lines shaped like commands, so the parser's accepting paths get exercised too.
fn commandish() -> impl Strategy<Value = String> {
    let verb = prop::sample::select(vec![
        "#register",
        "#login",
        "#join",
        "#leave",
        "#users",
        "#rooms",
        "#all_messages",
        "#my_messages",
        "#ping",
        "#help",
        "#quit",
        "#kick",
        "#ban",
        "#unban",
        "#mute",
        "#unmute",
        "#delete",
        "#modlog",
        "#msg",
        "#privates",
        "#ignore",
        "#unignore",
        "#MSG",
        "##",
        "#JOIN",
        "",
    ]);
    // Words, numbers, durations and addresses, so bans and deletions parse too.
    let word = "[A-Za-z0-9_ -]{0,40}|[0-9]{1,5}|[0-9]{1,3}[smhdw]|[0-9]{1,3}(\\.[0-9]{1,3}){3}(/[0-9]{1,2})?|\\PC{0,10}";
    (verb, prop::collection::vec(word, 0..4)).prop_map(|(v, ws)| {
        let mut s = v.to_string();
        for w in ws {
            s.push(' ');
            s.push_str(&w);
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let mut codec = LineCodec::new(64);
        let mut buf = BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(&chunk);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                if let Line::Text(s) = item {
                    prop_assert!(s.len() <= 64);
                    check_line(&s);
                }
            }
        }
        while let Some(item) = codec.decode_eof(&mut buf).unwrap() {
            if let Line::Text(s) = item {
                check_line(&s);
            }
        }
    }

    #[test]
    fn any_text_roundtrips(line in "\\PC{0,80}") {
        check_line(&line);
    }

    #[test]
    fn commands_roundtrip(line in commandish()) {
        check_line(&line);
    }

    /// Every server line the daemon encodes parses back, in the client, to the same fields.
    #[test]
    fn every_server_line_parses_back(
        name in "[A-Za-z0-9_-]{1,32}",
        room in "[a-z0-9_-]{1,32}",
        text in "[^\r\n\x00-\x1f]{0,80}",
        count in 0usize..100_000,
        id in 1i64..i64::MAX,
        names in prop::collection::vec("[A-Za-z0-9_-]{1,32}", 0..5),
        code in prop::sample::select(ErrCode::ALL.to_vec()),
    ) {
        let line = |r: Reply| {
            let b = r.to_bytes();
            let s = String::from_utf8(b.to_vec()).unwrap();
            prop_assert!(s.ends_with("\r\n"));
            Ok(s.trim_end_matches("\r\n").to_string())
        };
        let n = count.to_string();
        let l = line(Reply::Info(&text))?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Info(&text));
        let l = line(Reply::Ok("join", &text))?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Ok("join", &text));
        let l = line(Reply::Err(code, &text))?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Err(code.as_str(), &text));
        let l = line(Reply::Pong)?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Pong);
        let l = line(Reply::Msg { room: &room, name: &name, text: &text })?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Msg(&room, &name, &text));
        let l = line(Reply::Priv { from: &name, to: &room, text: &text })?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Priv(&name, &room, &text));
        let l = line(Reply::Privates(count))?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Privates(&n));
        let l = line(Reply::Private { name: &name, unread: count as u64 })?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Private(&name, &n));
        let l = line(Reply::Join { room: &room, name: &name, count })?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Join(&room, &name, &n));
        let l = line(Reply::Leave { room: &room, name: &name, count })?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Leave(&room, &name, &n));
        let l = line(Reply::Deleted { room: &room, id, name: &name })?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Deleted(&room, &id.to_string(), &name));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let l = line(Reply::Users { room: &room, names: &refs })?;
        let joined = refs.join(" ");
        prop_assert_eq!(
            ServerLine::parse(&l),
            ServerLine::Users(&room, &names.len().to_string(), &joined)
        );
        let l = line(Reply::Rooms(count))?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Rooms(&n));
        let l = line(Reply::Room { room: &room, count, topic: "" })?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Room(&room, &n, ""));
        let l = line(Reply::Room { room: &room, count, topic: &text })?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Room(&room, &n, &text));
        let at = "2026-12-01T21:33:41.737Z";
        let l = line(Reply::Topic { room: &room, by: &name, at, text: &text })?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Topic(&room, &name, at, &text));
        let l = line(Reply::Action { room: &room, name: &name, text: &text })?;
        prop_assert_eq!(ServerLine::parse(&l), ServerLine::Action(&room, &name, &text));
        let h = HistRow {
            id,
            time: "2026-12-01T21:33:41.737Z".into(),
            room: room.clone(),
            name: name.clone(),
            text: text.clone(),
            action: false,
        };
        for reason in [String::new(), text.clone()] {
            let m = ModRow {
                id,
                time: h.time.clone(),
                actor: name.clone(),
                action: "kick".into(),
                target: room.clone(),
                reason: reason.clone(),
            };
            let l = line(Reply::Modlog(&m))?;
            let id_s = id.to_string();
            prop_assert_eq!(
                ServerLine::parse(&l),
                ServerLine::Modlog {
                    id: &id_s,
                    time: &m.time,
                    actor: &name,
                    action: "kick",
                    target: &room,
                    reason: &reason,
                }
            );
        }
        let l = line(Reply::Hist(&h))?;
        let id_s = id.to_string();
        prop_assert_eq!(
            ServerLine::parse(&l),
            ServerLine::Hist { id: &id_s, time: &h.time, room: &room, name: &name, text: &text }
        );
    }
}
