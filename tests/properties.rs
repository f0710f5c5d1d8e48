//! Property tests of the pure parts: arbitrary bytes never panic the codec, sanitizer or
//! parser, and every parsed request formats back to a line that parses to the same request.
use bytes::BytesMut;
use linechat::codec::{Line, LineCodec};
use linechat::protocol::{Request, sanitize};
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
        "##",
        "#JOIN",
        "",
    ]);
    let word = "[A-Za-z0-9_ -]{0,40}|[0-9]{1,5}|\\PC{0,10}";
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
}
