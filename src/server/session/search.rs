//! `#search`: the full-text search of what the user may read, answered like the other history
//! verbs (`HIST` lines, oldest first, then `OK search N`).

use super::Session;
use crate::User;
use crate::protocol::ProtoError;
use crate::protocol::search::Search;
use crate::store::search::{SEARCH_DEADLINE, SearchError};

impl Session {
    /// `#search WORDS [in=ROOM|in=@NAME] [from=NAME] [LIMIT] [BEFORE_ID]`.
    pub(super) async fn search(&mut self, user: User, query: Search) {
        let rows = match self.shared.store.search(user.id, query).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(SearchError::NotJoined(room))) => {
                return self.error(&ProtoError::not_joined(&room));
            }
            Ok(Err(SearchError::NoUser(name))) => {
                return self.error(&ProtoError::no_such_user(&name));
            }
            Ok(Err(SearchError::TooSlow)) => {
                event!(info, self, "search stopped at its deadline");
                return self.error(&ProtoError::search_too_slow(SEARCH_DEADLINE.as_secs()));
            }
            Ok(Err(SearchError::Sqlite(e))) => Err(e.into()),
            Err(e) => Err(e),
        };
        self.history("search", rows);
    }
}
