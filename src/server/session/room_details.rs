//! Room details and people: `#topic [TEXT]` and `#whois NAME`.

use super::{Session, State, store_error};
use crate::User;
use crate::protocol::{ProtoError, Reply};
use bytes::BytesMut;

impl Session {
    /// `#topic`: the room's topic (`TOPIC ROOM NAME TIME TEXT`, if one is set) then
    /// `OK topic ROOM`. `#topic TEXT`: set through the log, so every session in the room on
    /// every node gets `TOPIC` in order with the room's messages; then `OK topic ROOM`. Anyone
    /// in the room may set it, as in a channel without +t; a muted user may not.
    pub(super) async fn topic(&mut self, user: User, text: Option<&str>) {
        let State::LoggedIn(_, Some(room)) = &self.state else {
            return self.error(&ProtoError::not_in_room());
        };
        let room = room.clone();
        let Some(text) = text else {
            return match self.shared.store.topic(room.clone()).await {
                Ok(topic) => {
                    let mut buf = BytesMut::new();
                    if let Some(t) = &topic {
                        Reply::Topic {
                            room: &room,
                            by: &t.by,
                            at: &t.at,
                            text: &t.text,
                        }
                        .encode(&mut buf);
                    }
                    Reply::Ok("topic", &room).encode(&mut buf);
                    self.outbox.push(buf.freeze());
                }
                Err(e) => self.error(&store_error(&e)),
            };
        };
        if let Some(until) = self.shared.sanctions.muted(user.id) {
            return self.error(&ProtoError::muted(until));
        }
        match self.shared.log.topic(&user, &room, text.to_string()).await {
            Ok(()) => self.reply(Reply::Ok("topic", &room)),
            Err(e) => self.error(&store_error(&e)),
        }
    }

    /// `#whois NAME`: `WHOIS NAME SINCE online ROOM...` (the rooms its sessions are in: every
    /// room is public) or `WHOIS NAME SINCE away LAST_SEEN|unknown`.
    pub(super) async fn whois(&mut self, name: &str) {
        let who = match self.account(name).await {
            Ok(Some(who)) => who,
            Ok(None) => return self.error(&ProtoError::no_such_user(name)),
            Err(e) => return self.error(&store_error(&e)),
        };
        let (since, last) = match self.shared.store.seen(who.id).await {
            Ok(seen) => seen,
            Err(e) => return self.error(&store_error(&e)),
        };
        let (online, rooms) = self.shared.rooms.presence(who.id).await;
        let rooms: Vec<&str> = rooms.iter().map(|r| &**r).collect();
        self.reply(Reply::Whois {
            name: &who.name,
            since: &since,
            presence: if online {
                Ok(&rooms)
            } else {
                Err(last.as_deref())
            },
        });
    }
}
