//! Password hashing and checking with bcrypt, off the async threads.
//!
//! Every bcrypt call runs on `spawn_blocking` behind a semaphore of one permit less than the
//! machine has cores (at least one), so a login storm queues up and always leaves a core to the
//! chat traffic of users already logged in. Logins of existing accounts go ahead of new
//! accounts: a hash (registration, password change) first passes a gate with as many places
//! as there are permits, so at most that many hashes are ever running or queued for a permit,
//! and a login arriving during a registration storm waits for the hashes already running, not
//! for the whole storm. Unknown users are checked
//! against a dummy hash of the same cost, so "no such user" and "wrong password" take the same
//! time.
//!
//! bcrypt reads at most 72 bytes. The crate's `non_truncating_*` functions count the C string
//! terminator and so refuse a 72-byte password, which the protocol allows; instead, this module
//! never hands bcrypt more than [`PASSWORD_MAX`] (72) bytes — registration refuses longer ones
//! and a longer login password fails without being compared — so no byte of a password is
//! ever ignored.

use crate::protocol::PASSWORD_MAX;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Auth {
    cost: u32,
    permits: Arc<Semaphore>,
    /// Places for hashes in front of `permits` (see the module doc).
    hash_gate: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl Auth {
    /// Prepares bcrypt at `cost` (this computes the dummy hash: call it before serving).
    pub fn new(cost: u32) -> Result<Auth, bcrypt::BcryptError> {
        let dummy_hash = bcrypt::hash("linechat dummy password", cost)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = cores.saturating_sub(1).max(1);
        Ok(Auth {
            cost,
            permits: Arc::new(Semaphore::new(workers)),
            hash_gate: Arc::new(Semaphore::new(workers)),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// A new bcrypt hash of `password`, which must be at most [`PASSWORD_MAX`] bytes.
    pub async fn hash(&self, password: &str) -> Result<String, bcrypt::BcryptError> {
        if password.len() > PASSWORD_MAX {
            return Err(bcrypt::BcryptError::Truncation(password.len()));
        }
        let password = password.to_string();
        let cost = self.cost;
        let queued = Instant::now();
        let Ok(_place) = self.hash_gate.acquire().await else {
            return Err(bcrypt::BcryptError::InvalidHash("worker failed"));
        };
        self.blocking(queued, move || bcrypt::hash(password, cost))
            .await
            .unwrap_or(Err(bcrypt::BcryptError::InvalidHash("worker failed")))
    }

    /// Whether `password` matches `hash`; with no hash (unknown user) or a password longer than
    /// [`PASSWORD_MAX`] it checks a dummy hash and returns false, taking the same time.
    pub async fn verify(&self, password: &str, hash: Option<String>) -> bool {
        let known = hash.is_some() && password.len() <= PASSWORD_MAX;
        let (password, hash) = match hash {
            Some(h) if known => (password, h),
            _ => ("linechat dummy password", self.dummy_hash.to_string()),
        };
        let password = password.to_string();
        let ok = self
            .blocking(Instant::now(), move || {
                bcrypt::verify(password, &hash).unwrap_or(false)
            })
            .await
            .unwrap_or(false);
        known && ok
    }

    /// Runs `f` on a worker once a permit is free; the wait since `queued` is measured.
    async fn blocking<T: Send + 'static>(
        &self,
        queued: Instant,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.permits.acquire().await.ok()?;
        crate::meters::bcrypt_waited(queued.elapsed());
        tokio::task::spawn_blocking(f).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let a = Auth::new(4).unwrap();
        let h = a.hash("s3cret-pass").await.unwrap();
        assert!(h.starts_with("$2b$04$"));
        assert!(a.verify("s3cret-pass", Some(h.clone())).await);
        assert!(!a.verify("s3cret-pasS", Some(h)).await);
        assert!(!a.verify("linechat dummy password", None).await);
        let p72 = "p".repeat(72);
        let h = a.hash(&p72).await.unwrap();
        assert!(a.verify(&p72, Some(h.clone())).await);
        assert!(!a.verify(&format!("{}q", &p72[..71]), Some(h.clone())).await);
        assert!(!a.verify(&format!("{p72}extra"), Some(h)).await);
        assert!(a.hash(&"p".repeat(73)).await.is_err());
    }
}
