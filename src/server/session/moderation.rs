//! The admins' verbs (`#kick`, `#ban`, `#unban`, `#mute`, `#unmute`, `#delete`, `#modlog`):
//! whether the sender is an admin is read from the store at every request, so a revocation by
//! the operator counts at once. Every action is committed to the moderation log, with what it
//! changes, before it takes effect.

use super::{Session, store_error};
use crate::User;
use crate::log::{Applied, Effect, Moderation};
use crate::protocol::sanction::{Ban, Target, Until};
use crate::protocol::{ProtoError, Reply};
use crate::store::StoreError;
use bytes::BytesMut;
use std::time::Duration;

/// What a refused moderation request is told.
type Refused = ProtoError;

impl Session {
    /// Refuses a non-admin.
    async fn check_admin(&self, me: &User) -> Result<(), Refused> {
        match self.shared.store.is_admin(me.id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ProtoError::admins_only()),
            Err(e) => Err(store_error(&e)),
        }
    }

    /// The account an action aims at; admins cannot be aimed at by admins (the operator
    /// revokes first, with the offline tool).
    async fn target_account(&self, name: &str) -> Result<User, Refused> {
        let target = match self.shared.store.find_user(name).await {
            Ok(Some(found)) => found.user,
            Ok(None) => return Err(ProtoError::no_such_account(name)),
            Err(e) => return Err(store_error(&e)),
        };
        match self.shared.store.is_admin(target.id).await {
            Ok(false) => Ok(target),
            Ok(true) => Err(ProtoError::target_is_admin(&target.name)),
            Err(e) => Err(store_error(&e)),
        }
    }

    /// Commits `record`, then re-reads the bans and mutes and closes the sessions a new ban
    /// covers: how many, or `None` if there was nothing to act on.
    async fn enforce(&self, record: Moderation) -> Result<Option<usize>, StoreError> {
        let _held = self.shared.sanctions.refreshing.lock().await;
        if self.moderate(record).await? == Applied::Missing {
            return Ok(None);
        }
        self.shared.refresh_sanctions().await.map(Some)
    }

    /// Commits `record` through the log, counting the action if it was taken.
    async fn moderate(&self, record: Moderation) -> Result<Applied, StoreError> {
        let action = record.action;
        let applied = self.shared.log.moderate(record).await?;
        if applied == Applied::Done {
            crate::meters::moderated(action);
        }
        Ok(applied)
    }

    /// Answers a moderation verb: its reply, or the refusal.
    fn answer(&self, r: Result<(&'static str, String), Refused>) {
        match r {
            Ok((verb, args)) => self.reply(Reply::Ok(verb, &args)),
            Err(e) => self.error(&e),
        }
    }

    /// `#kick NAME [REASON]` (admins): recorded first, then every session of NAME gets
    /// `ERR kicked REASON` and is closed; its rooms hear `LEAVE`.
    pub(super) async fn kick(&mut self, me: User, name: &str, reason: &str) {
        let r = async {
            self.check_admin(&me).await?;
            let target = self.target_account(name).await?;
            let record = Moderation {
                actor: me.name.to_string(),
                action: "kick",
                target: target.name.to_string(),
                reason: reason.to_string(),
                effect: Effect::Kick { user: target.id },
            };
            self.moderate(record).await.map_err(|e| store_error(&e))?;
            let line = ProtoError::kicked(reason).to_bytes();
            let sessions = self.shared.rooms.kick(target.id, line).await;
            event!(
                info,
                self,
                "kicked {} ({sessions} sessions): {reason}",
                target.name
            );
            Ok(("kick", format!("{} {sessions}", target.name)))
        };
        let r = r.await;
        self.answer(r);
    }

    /// `#ban NAME|NETWORK [DURATION] [REASON]` (admins): the account's logins, or the
    /// network's connections, are refused until the ban ends; its sessions are closed now
    /// with `ERR banned` (on a network, all but admins').
    pub(super) async fn ban(
        &mut self,
        me: User,
        target: Target<'_>,
        duration: Option<Duration>,
        reason: &str,
    ) {
        let r = async {
            self.check_admin(&me).await?;
            let ban = Ban {
                until: Until::after(chrono::Utc::now(), duration),
                reason: reason.to_string(),
            };
            let (name, effect) = match target {
                Target::Account(name) => {
                    let user = self.target_account(name).await?;
                    let effect = Effect::Ban {
                        user: user.id,
                        ban: ban.clone(),
                    };
                    (user.name.to_string(), effect)
                }
                Target::Network(net) => {
                    if net.contains(&self.peer.ip().to_canonical()) {
                        return Err(ProtoError::own_address(&net.to_string()));
                    }
                    let network = net.to_string();
                    let effect = Effect::BanNetwork {
                        network: network.clone(),
                        ban: ban.clone(),
                    };
                    (network, effect)
                }
            };
            let record = Moderation {
                actor: me.name.to_string(),
                action: "ban",
                target: name.clone(),
                reason: ban.text(),
                effect,
            };
            let closed = self
                .enforce(record)
                .await
                .map_err(|e| store_error(&e))?
                .unwrap_or(0);
            event!(
                info,
                self,
                "banned {name} {} ({closed} sessions)",
                ban.text()
            );
            Ok(("ban", format!("{name} {} {closed}", ban.until.text())))
        };
        let r = r.await;
        self.answer(r);
    }

    /// `#unban NAME|NETWORK` (admins).
    pub(super) async fn unban(&mut self, me: User, target: Target<'_>) {
        let r = async {
            self.check_admin(&me).await?;
            let (name, effect) = match target {
                Target::Account(name) => {
                    let user = match self.shared.store.find_user(name).await {
                        Ok(Some(found)) => found.user,
                        Ok(None) => return Err(ProtoError::no_such_account(name)),
                        Err(e) => return Err(store_error(&e)),
                    };
                    (user.name.to_string(), Effect::Unban { user: user.id })
                }
                Target::Network(net) => {
                    let network = net.to_string();
                    (network.clone(), Effect::UnbanNetwork { network })
                }
            };
            self.lift(&me, "unban", name, effect, "banned").await
        };
        let r = r.await;
        self.answer(r);
    }

    /// `#mute NAME [DURATION] [REASON]` (admins): NAME's chat lines are refused with
    /// `ERR muted until TIME` until it ends.
    pub(super) async fn mute(
        &mut self,
        me: User,
        name: &str,
        duration: Option<Duration>,
        reason: &str,
    ) {
        let r = async {
            self.check_admin(&me).await?;
            let user = self.target_account(name).await?;
            let until = Until::after(chrono::Utc::now(), duration);
            let words = Ban {
                until,
                reason: reason.to_string(),
            };
            let record = Moderation {
                actor: me.name.to_string(),
                action: "mute",
                target: user.name.to_string(),
                reason: words.text(),
                effect: Effect::Mute {
                    user: user.id,
                    until,
                },
            };
            self.enforce(record).await.map_err(|e| store_error(&e))?;
            event!(info, self, "muted {} {}", user.name, words.text());
            Ok(("mute", format!("{} {}", user.name, until.text())))
        };
        let r = r.await;
        self.answer(r);
    }

    /// `#unmute NAME` (admins).
    pub(super) async fn unmute(&mut self, me: User, name: &str) {
        let r = async {
            self.check_admin(&me).await?;
            let user = match self.shared.store.find_user(name).await {
                Ok(Some(found)) => found.user,
                Ok(None) => return Err(ProtoError::no_such_account(name)),
                Err(e) => return Err(store_error(&e)),
            };
            let effect = Effect::Unmute { user: user.id };
            self.lift(&me, "unmute", user.name.to_string(), effect, "muted")
                .await
        };
        let r = r.await;
        self.answer(r);
    }

    /// Lifts a ban or a mute; `ERR usage NAME is not WHAT` if there was none.
    async fn lift(
        &self,
        me: &User,
        action: &'static str,
        name: String,
        effect: Effect,
        what: &str,
    ) -> Result<(&'static str, String), Refused> {
        let record = Moderation {
            actor: me.name.to_string(),
            action,
            target: name.clone(),
            reason: String::new(),
            effect,
        };
        match self.enforce(record).await {
            Ok(Some(_)) => {
                event!(info, self, "{action} {name}");
                Ok((action, name))
            }
            Ok(None) => Err(ProtoError::not_sanctioned(&name, what)),
            Err(e) => Err(store_error(&e)),
        }
    }

    /// `#delete ID [REASON]` (admins): the message leaves history and replay; its room hears
    /// `DELETED ROOM ID NAME`, in log order, before the admin's `OK delete ID`.
    pub(super) async fn delete(&mut self, me: User, id: i64, reason: &str) {
        let r = async {
            self.check_admin(&me).await?;
            let record = Moderation {
                actor: me.name.to_string(),
                action: "delete",
                target: id.to_string(),
                reason: reason.to_string(),
                effect: Effect::Delete { id },
            };
            match self.moderate(record).await {
                Ok(Applied::Done) => {
                    event!(info, self, "deleted message {id}: {reason}");
                    Ok(("delete", id.to_string()))
                }
                Ok(Applied::Missing) => Err(ProtoError::no_such_message(id)),
                Err(e) => Err(store_error(&e)),
            }
        };
        let r = r.await;
        self.answer(r);
    }

    /// `#modlog [LIMIT]` (admins): the rows and the closing `OK` as one queue item.
    pub(super) async fn modlog(&self, me: User, limit: u32) {
        if let Err(e) = self.check_admin(&me).await {
            return self.error(&e);
        }
        match self.shared.store.modlog(limit).await {
            Ok(rows) => {
                let mut buf = BytesMut::new();
                for r in &rows {
                    Reply::Modlog(r).encode(&mut buf);
                }
                Reply::Ok("modlog", &rows.len().to_string()).encode(&mut buf);
                self.outbox.push(buf.freeze());
            }
            Err(e) => self.error(&store_error(&e)),
        }
    }
}
