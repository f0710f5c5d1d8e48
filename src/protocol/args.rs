//! The shapes the verbs' arguments share: names, passwords, and which page of a history.

use super::{ErrCode, NAME_MAX, PASSWORD_MAX, PASSWORD_MIN, ProtoError};

/// Which page of a history listing: at most `limit` messages with id below `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Number of messages, 1 to [`HISTORY_MAX_LIMIT`].
    pub limit: u32,
    /// Only messages with an id strictly below this one; `None` means the newest.
    pub before: Option<i64>,
}

/// Checks a user or room name against `[A-Za-z0-9_-]{1,32}`.
pub fn validate_name(name: &str) -> Result<(), ProtoError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ProtoError::new(
            ErrCode::BadName,
            format!("names are 1 to {NAME_MAX} of A-Z a-z 0-9 _ -"),
        ))
    }
}

/// Checks a new password's length: [`PASSWORD_MIN`] to [`PASSWORD_MAX`] bytes.
pub fn validate_password(password: &str) -> Result<(), ProtoError> {
    if (PASSWORD_MIN..=PASSWORD_MAX).contains(&password.len()) {
        Ok(())
    } else {
        Err(ProtoError::new(
            ErrCode::BadPass,
            format!("passwords are {PASSWORD_MIN} to {PASSWORD_MAX} bytes"),
        ))
    }
}
