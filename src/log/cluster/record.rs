//! A record of the cluster's stream: one writing request, as every node applies it.
//!
//! JSON (serde), one request per stream message; the message's `Nats-Msg-Id` names the node
//! incarnation that published it (see [`msg_id`]). Decoding rebuilds the [`Op`] with replies
//! nobody waits on: only the publishing node answers its session, from the request it kept.

use super::super::{Departure, Effect, Moderation, Op};
use crate::protocol::sanction::{Ban, Until};
use crate::{SessionId, User, UserId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::oneshot;

/// One writing request in the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the publishing node took the request (RFC 3339 UTC, milliseconds): the time every
    /// node stores with it.
    pub at: String,
    /// What it does.
    #[serde(flatten)]
    pub kind: Kind,
}

/// What a record does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Kind {
    /// A chat line, or a private message (`to`: its recipient; `room`: their conversation).
    Say {
        session: SessionId,
        user: UserId,
        name: String,
        room: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<(UserId, String)>,
        /// An action (`#me`); absent in records of older nodes.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        action: bool,
    },
    /// A session joins a room (its replay is read by each node as it applies the record).
    Join {
        session: SessionId,
        user: UserId,
        name: String,
        room: String,
        history: u32,
    },
    /// A session leaves its room.
    Leave { session: SessionId },
    /// A session ends.
    Depart {
        session: SessionId,
        announce: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<UserId>,
    },
    /// An account is made (its id is the record's sequence).
    CreateUser { name: String, hash: String },
    /// A password changes.
    SetPassword { user: UserId, hash: String },
    /// An account refuses (`on`) or takes again another's private messages.
    Ignore {
        user: UserId,
        ignored: UserId,
        on: bool,
    },
    /// A room's topic is set.
    Topic {
        user: UserId,
        name: String,
        room: String,
        text: String,
    },
    /// An admin's action and its effect.
    Moderate {
        actor: String,
        action: String,
        target: String,
        reason: String,
        effect: StoredEffect,
    },
    /// A node incarnation is gone: every node frees its sessions' seats.
    NodeGone { epoch: u32 },
}

/// [`Effect`] with its times in their stored form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoredEffect {
    Kick {
        user: UserId,
    },
    Ban {
        user: UserId,
        until: String,
        reason: String,
    },
    Unban {
        user: UserId,
    },
    BanNetwork {
        network: String,
        until: String,
        reason: String,
    },
    UnbanNetwork {
        network: String,
    },
    Mute {
        user: UserId,
        until: String,
    },
    Unmute {
        user: UserId,
    },
    Delete {
        id: i64,
    },
}

/// The actions a moderation record may name (the log keeps them as static words).
const ACTIONS: &[&str] = &["kick", "ban", "unban", "mute", "unmute", "delete"];

/// The `Nats-Msg-Id` of a node incarnation's `n`th request: the stream drops a second copy
/// of the same id (a retried publish), so a request is stored at most once.
pub fn msg_id(epoch: u32, n: u64) -> String {
    format!("{epoch:08x}-{n}")
}

/// The message id of incarnation `epoch`'s end: the same from whoever publishes it.
pub fn gone_id(epoch: u32) -> String {
    format!("gone-{epoch:08x}")
}

/// The node incarnation that published a message, from its id.
pub fn epoch_of_msg_id(id: &str) -> Option<u32> {
    let (epoch, _) = id.split_once('-')?;
    u32::from_str_radix(epoch, 16).ok()
}

impl Record {
    /// The record of a writing request, `None` for what is not one (health, stop, ...).
    pub fn of(op: &Op, at: String) -> Option<Record> {
        let kind = match op {
            Op::Say {
                session,
                user,
                room,
                text,
                to,
                action,
                ..
            } => Kind::Say {
                session: *session,
                user: user.id,
                name: user.name.to_string(),
                room: room.to_string(),
                text: text.clone(),
                to: to.as_ref().map(|u| (u.id, u.name.to_string())),
                action: *action,
            },
            Op::Join {
                session,
                user,
                room,
                history,
                ..
            } => Kind::Join {
                session: *session,
                user: user.id,
                name: user.name.to_string(),
                room: room.to_string(),
                history: *history,
            },
            Op::Leave { session, .. } => Kind::Leave { session: *session },
            Op::Depart { departure, .. } => Kind::Depart {
                session: departure.session,
                announce: departure.announce,
                user: departure.user,
            },
            Op::CreateUser { name, hash, .. } => Kind::CreateUser {
                name: name.clone(),
                hash: hash.clone(),
            },
            Op::SetPassword { user, hash, .. } => Kind::SetPassword {
                user: *user,
                hash: hash.clone(),
            },
            Op::Ignore {
                user, ignored, on, ..
            } => Kind::Ignore {
                user: *user,
                ignored: *ignored,
                on: *on,
            },
            Op::Topic {
                user, room, text, ..
            } => Kind::Topic {
                user: user.id,
                name: user.name.to_string(),
                room: room.to_string(),
                text: text.clone(),
            },
            Op::Moderate { record, .. } => Kind::Moderate {
                actor: record.actor.clone(),
                action: record.action.to_string(),
                target: record.target.clone(),
                reason: record.reason.clone(),
                effect: StoredEffect::of(&record.effect),
            },
            Op::Evict { epoch } => Kind::NodeGone { epoch: *epoch },
            Op::Health { .. }
            | Op::Sync { .. }
            | Op::Applied { .. }
            | Op::Refused { .. }
            | Op::Stop { .. } => {
                return None;
            }
        };
        Some(Record { at, kind })
    }

    /// The request this record stands for, as another node applies it: replies go nowhere.
    /// `None` if it names what this daemon does not know (a newer node's action).
    pub fn into_op(self) -> Option<Op> {
        Some(match self.kind {
            Kind::Say {
                session,
                user,
                name,
                room,
                text,
                to,
                action,
            } => Op::Say {
                session,
                user: User {
                    id: user,
                    name: Arc::from(name),
                },
                room: Arc::from(room),
                text,
                to: to.map(|(id, name)| User {
                    id,
                    name: Arc::from(name),
                }),
                action,
                read: None,
            },
            Kind::Join {
                session,
                user,
                name,
                room,
                history,
            } => Op::Join {
                session,
                user: User {
                    id: user,
                    name: Arc::from(name),
                },
                room: Arc::from(room),
                history,
                reply: oneshot::channel().0,
            },
            Kind::Leave { session } => Op::Leave {
                session,
                reply: oneshot::channel().0,
            },
            Kind::Depart {
                session,
                announce,
                user,
            } => Op::Depart {
                departure: Departure {
                    session,
                    user,
                    line: None,
                    announce,
                },
                reply: oneshot::channel().0,
            },
            Kind::CreateUser { name, hash } => Op::CreateUser {
                name,
                hash,
                reply: oneshot::channel().0,
            },
            Kind::SetPassword { user, hash } => Op::SetPassword {
                user,
                hash,
                reply: oneshot::channel().0,
            },
            Kind::Ignore { user, ignored, on } => Op::Ignore {
                user,
                ignored,
                on,
                reply: oneshot::channel().0,
            },
            Kind::Topic {
                user,
                name,
                room,
                text,
            } => Op::Topic {
                user: User {
                    id: user,
                    name: Arc::from(name),
                },
                room: Arc::from(room),
                text,
                reply: oneshot::channel().0,
            },
            Kind::Moderate {
                actor,
                action,
                target,
                reason,
                effect,
            } => Op::Moderate {
                record: Moderation {
                    actor,
                    action: ACTIONS.iter().find(|a| **a == action)?,
                    target,
                    reason,
                    effect: effect.into_effect()?,
                },
                reply: oneshot::channel().0,
            },
            Kind::NodeGone { epoch } => Op::Evict { epoch },
        })
    }

    /// The record as the stream's message body.
    pub fn encode(&self) -> bytes::Bytes {
        // A record is strings and integers: serializing it cannot fail.
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    /// A stream message's body as a record.
    pub fn decode(body: &[u8]) -> Result<Record, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

impl StoredEffect {
    fn of(effect: &Effect) -> StoredEffect {
        match effect.clone() {
            Effect::Kick { user } => StoredEffect::Kick { user },
            Effect::Ban { user, ban } => StoredEffect::Ban {
                user,
                until: ban.until.stored(),
                reason: ban.reason,
            },
            Effect::Unban { user } => StoredEffect::Unban { user },
            Effect::BanNetwork { network, ban } => StoredEffect::BanNetwork {
                network,
                until: ban.until.stored(),
                reason: ban.reason,
            },
            Effect::UnbanNetwork { network } => StoredEffect::UnbanNetwork { network },
            Effect::Mute { user, until } => StoredEffect::Mute {
                user,
                until: until.stored(),
            },
            Effect::Unmute { user } => StoredEffect::Unmute { user },
            Effect::Delete { id } => StoredEffect::Delete { id },
        }
    }

    fn into_effect(self) -> Option<Effect> {
        Some(match self {
            StoredEffect::Kick { user } => Effect::Kick { user },
            StoredEffect::Ban {
                user,
                until,
                reason,
            } => Effect::Ban {
                user,
                ban: Ban {
                    until: Until::from_stored(&until)?,
                    reason,
                },
            },
            StoredEffect::Unban { user } => Effect::Unban { user },
            StoredEffect::BanNetwork {
                network,
                until,
                reason,
            } => Effect::BanNetwork {
                network,
                ban: Ban {
                    until: Until::from_stored(&until)?,
                    reason,
                },
            },
            StoredEffect::UnbanNetwork { network } => Effect::UnbanNetwork { network },
            StoredEffect::Mute { user, until } => Effect::Mute {
                user,
                until: Until::from_stored(&until)?,
            },
            StoredEffect::Unmute { user } => Effect::Unmute { user },
            StoredEffect::Delete { id } => Effect::Delete { id },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(op: &Op) -> Record {
        let record = Record::of(op, "2026-12-02T10:00:00.000Z".into()).unwrap();
        let back = Record::decode(&record.encode()).unwrap();
        assert_eq!(back, record);
        let again = Record::of(&back.clone().into_op().unwrap(), back.at.clone()).unwrap();
        assert_eq!(again, record, "decoding rebuilds the same request");
        record
    }

    /// Every writing request survives the stream: encoded, decoded and rebuilt, it is the
    /// same request, with its text verbatim.
    #[test]
    fn every_writing_request_round_trips_through_a_record() {
        let user = User {
            id: 42,
            name: Arc::from("Ann"),
        };
        let say = Op::Say {
            session: (7 << 32) | 3,
            user: user.clone(),
            room: Arc::from("general"),
            text: "héllo \"quoted\" {json} \\ ok".into(),
            to: None,
            action: false,
            read: None,
        };
        let r = round_trip(&say);
        assert!(
            matches!(&r.kind, Kind::Say { text, .. } if text == "héllo \"quoted\" {json} \\ ok")
        );
        round_trip(&Op::Say {
            session: 4,
            user: user.clone(),
            room: Arc::from("@1:42"),
            text: "just for you".into(),
            to: Some(User {
                id: 1,
                name: Arc::from("Bob"),
            }),
            action: false,
            read: None,
        });
        round_trip(&Op::Say {
            session: 5,
            user: user.clone(),
            room: Arc::from("general"),
            text: "waves".into(),
            to: None,
            action: true,
            read: None,
        });
        round_trip(&Op::Topic {
            user: user.clone(),
            room: Arc::from("general"),
            text: "release day: no deploys".into(),
            reply: oneshot::channel().0,
        });
        round_trip(&Op::Join {
            session: 9,
            user: user.clone(),
            room: Arc::from("r"),
            history: 10,
            reply: oneshot::channel().0,
        });
        round_trip(&Op::Depart {
            departure: Departure {
                session: 9,
                user: Some(42),
                line: Some(bytes::Bytes::from_static(b"OK quit\n")),
                announce: true,
            },
            reply: oneshot::channel().0,
        });
        round_trip(&Op::CreateUser {
            name: "bob".into(),
            hash: "$2b$04$x".into(),
            reply: oneshot::channel().0,
        });
        for effect in [
            Effect::Kick { user: 42 },
            Effect::Ban {
                user: 42,
                ban: Ban {
                    until: Until::Forever,
                    reason: "spam".into(),
                },
            },
            Effect::BanNetwork {
                network: "192.0.2.0/24".into(),
                ban: Ban {
                    until: Until::from_stored("2026-12-03T10:00:00.000Z").unwrap(),
                    reason: String::new(),
                },
            },
            Effect::Mute {
                user: 42,
                until: Until::Forever,
            },
            Effect::Delete { id: 5 },
        ] {
            round_trip(&Op::Moderate {
                record: Moderation {
                    actor: "root".into(),
                    action: "ban",
                    target: "Ann".into(),
                    reason: "until forever: spam".into(),
                    effect,
                },
                reply: oneshot::channel().0,
            });
        }
        round_trip(&Op::Evict { epoch: 0xdead_beef });
        round_trip(&Op::Ignore {
            user: 1,
            ignored: 2,
            on: true,
            reply: oneshot::channel().0,
        });
    }

    /// A record naming an action this daemon does not know is not applied as something else.
    #[test]
    fn an_unknown_action_is_not_applied() {
        let body = br#"{"at":"2026-12-02T10:00:00.000Z","op":"moderate","actor":"a","action":"smite","target":"b","reason":"","effect":{"kind":"kick","user":1}}"#;
        assert!(Record::decode(body).unwrap().into_op().is_none());
        assert!(Record::decode(b"{\"op\":\"teleport\"}").is_err());
    }

    #[test]
    fn a_message_id_names_its_node_incarnation() {
        let id = msg_id(0x00ab_cdef, 17);
        assert_eq!(id, "00abcdef-17");
        assert_eq!(epoch_of_msg_id(&id), Some(0x00ab_cdef));
        assert_eq!(epoch_of_msg_id("gone-1"), None);
    }
}
