//! The admins' verbs (`#kick`, `#modlog`): whether the sender is an admin is read from the
//! store at every request, so a revocation by the operator counts at once.

use super::{Session, store_error};
use crate::User;
use crate::log::Moderation;
use crate::protocol::{ProtoError, Reply};
use bytes::BytesMut;

impl Session {
    /// `#kick NAME [REASON]` (admins): recorded in the moderation log first, then every
    /// session of NAME gets `ERR kicked REASON` and is closed; its rooms hear `LEAVE`. Admins
    /// cannot kick admins: the offline tool revokes first (an operator's decision, not
    /// another admin's).
    pub(super) async fn kick(&mut self, me: User, name: &str, reason: &str) {
        match self.shared.store.is_admin(me.id).await {
            Ok(true) => {}
            Ok(false) => return self.error(&ProtoError::admins_only()),
            Err(e) => return self.error(&store_error(&e)),
        }
        let target = match self.shared.store.find_user(name).await {
            Ok(Some((user, _))) => user,
            Ok(None) => return self.error(&ProtoError::no_such_account(name)),
            Err(e) => return self.error(&store_error(&e)),
        };
        match self.shared.store.is_admin(target.id).await {
            Ok(false) => {}
            Ok(true) => return self.error(&ProtoError::target_is_admin(&target.name)),
            Err(e) => return self.error(&store_error(&e)),
        }
        let record = Moderation {
            actor: me.name.to_string(),
            action: "kick",
            target: target.name.to_string(),
            reason: reason.to_string(),
        };
        if let Err(e) = self.shared.log.moderate(record).await {
            return self.error(&store_error(&e));
        }
        let line = ProtoError::kicked(reason).to_bytes();
        let sessions = self.shared.rooms.kick(target.id, line).await;
        event!(
            info,
            self,
            "kicked {} ({sessions} sessions): {reason}",
            target.name
        );
        self.reply(Reply::Ok("kick", &format!("{} {sessions}", target.name)));
    }

    /// `#modlog [LIMIT]` (admins): the rows and the closing `OK` as one queue item.
    pub(super) async fn modlog(&self, me: User, limit: u32) {
        match self.shared.store.is_admin(me.id).await {
            Ok(true) => {}
            Ok(false) => return self.error(&ProtoError::admins_only()),
            Err(e) => return self.error(&store_error(&e)),
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
