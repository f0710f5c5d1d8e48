//! Server lines read back into their fields: the grammar of protocol.md section 4, parsed, for
//! the line client (and tests). [`Reply::encode`](super::Reply::encode) is its inverse.

/// One line from the server, split into its fields (the grammar of protocol.md, read back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine<'a> {
    /// `INFO TEXT`
    Info(&'a str),
    /// `OK VERB [ARGS]`
    Ok(&'a str, &'a str),
    /// `ERR CODE TEXT`
    Err(&'a str, &'a str),
    /// `PONG`
    Pong,
    /// `MSG ROOM NAME TEXT`
    Msg(&'a str, &'a str, &'a str),
    /// `ACTION ROOM NAME TEXT`
    Action(&'a str, &'a str, &'a str),
    /// `PRIV FROM TO TEXT`
    Priv(&'a str, &'a str, &'a str),
    /// `PRIVATES N`
    Privates(&'a str),
    /// `PRIVATE NAME UNREAD`
    Private(&'a str, &'a str),
    /// `JOIN ROOM NAME N`
    Join(&'a str, &'a str, &'a str),
    /// `LEAVE ROOM NAME N`
    Leave(&'a str, &'a str, &'a str),
    /// `USERS ROOM N NAMES...`
    Users(&'a str, &'a str, &'a str),
    /// `ROOMS N`
    Rooms(&'a str),
    /// `ROOM NAME N [TOPIC]` (TOPIC "" when none)
    Room(&'a str, &'a str, &'a str),
    /// `TOPIC ROOM NAME TIME TEXT`
    Topic(&'a str, &'a str, &'a str, &'a str),
    /// `WHOIS NAME SINCE online|away REST`
    Whois(&'a str, &'a str, &'a str),
    /// `HIST ID TIME ROOM NAME TEXT`
    Hist {
        /// Message id.
        id: &'a str,
        /// RFC 3339 time.
        time: &'a str,
        /// Room.
        room: &'a str,
        /// Sender.
        name: &'a str,
        /// Text.
        text: &'a str,
    },
    /// `STATS ...`
    Stats(&'a str),
    /// `MODLOG ID TIME ACTOR ACTION TARGET [REASON]`
    Modlog {
        /// Row id.
        id: &'a str,
        /// RFC 3339 time.
        time: &'a str,
        /// Who.
        actor: &'a str,
        /// What.
        action: &'a str,
        /// To whom.
        target: &'a str,
        /// Why (empty when none was given).
        reason: &'a str,
    },
    /// `DELETED ROOM ID NAME`
    Deleted(&'a str, &'a str, &'a str),
    /// Anything else (a newer server's line).
    Other(&'a str),
}

/// Splits at the first space: (first word, rest).
pub fn split2(s: &str) -> (&str, &str) {
    s.split_once(' ').unwrap_or((s, ""))
}

impl<'a> ServerLine<'a> {
    /// Parses one line (without its line ending).
    pub fn parse(line: &'a str) -> ServerLine<'a> {
        let (tag, rest) = split2(line);
        let fields = |n: usize| -> Option<Vec<&'a str>> {
            let v: Vec<&str> = rest.splitn(n, ' ').collect();
            (v.len() == n).then_some(v)
        };
        let parsed = match tag {
            "INFO" => Some(ServerLine::Info(rest)),
            "OK" => {
                let (verb, args) = split2(rest);
                Some(ServerLine::Ok(verb, args))
            }
            "ERR" => {
                let (code, text) = split2(rest);
                Some(ServerLine::Err(code, text))
            }
            "PONG" => Some(ServerLine::Pong),
            "MSG" => fields(3).map(|f| ServerLine::Msg(f[0], f[1], f[2])),
            "ACTION" => fields(3).map(|f| ServerLine::Action(f[0], f[1], f[2])),
            "PRIV" => fields(3).map(|f| ServerLine::Priv(f[0], f[1], f[2])),
            "PRIVATES" => Some(ServerLine::Privates(rest)),
            "PRIVATE" => fields(2).map(|f| ServerLine::Private(f[0], f[1])),
            "JOIN" => fields(3).map(|f| ServerLine::Join(f[0], f[1], f[2])),
            "LEAVE" => fields(3).map(|f| ServerLine::Leave(f[0], f[1], f[2])),
            "DELETED" => fields(3).map(|f| ServerLine::Deleted(f[0], f[1], f[2])),
            "USERS" => {
                let v: Vec<&str> = rest.splitn(3, ' ').collect();
                match v.as_slice() {
                    [room, n] => Some(ServerLine::Users(room, n, "")),
                    [room, n, names] => Some(ServerLine::Users(room, n, names)),
                    _ => None,
                }
            }
            "ROOMS" => Some(ServerLine::Rooms(rest)),
            "ROOM" => {
                let (room, rest) = split2(rest);
                let (n, topic) = split2(rest);
                Some(ServerLine::Room(room, n, topic))
            }
            "TOPIC" => fields(4).map(|f| ServerLine::Topic(f[0], f[1], f[2], f[3])),
            "WHOIS" => fields(3).map(|f| ServerLine::Whois(f[0], f[1], f[2])),
            "HIST" => fields(5).map(|f| ServerLine::Hist {
                id: f[0],
                time: f[1],
                room: f[2],
                name: f[3],
                text: f[4],
            }),
            "STATS" => Some(ServerLine::Stats(rest)),
            "MODLOG" => {
                let v: Vec<&str> = rest.splitn(6, ' ').collect();
                (v.len() >= 5).then(|| ServerLine::Modlog {
                    id: v[0],
                    time: v[1],
                    actor: v[2],
                    action: v[3],
                    target: v[4],
                    reason: v.get(5).copied().unwrap_or(""),
                })
            }
            _ => None,
        };
        parsed.unwrap_or(ServerLine::Other(line))
    }
}
