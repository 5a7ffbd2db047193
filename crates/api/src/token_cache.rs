//! Who each recently seen token belongs to, so that a request (a client polling a job's state,
//! say) costs one database query fewer. Tokens and users are never changed or revoked
//! through Egress, so an entry cannot go wrong; the time limit bounds how long a token row
//! deleted by hand keeps working. Unknown tokens are not cached: a token made a moment ago by
//! `egress admin` (another process) works at once, and guessing cannot fill the cache.

use egress_store::User;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a token's user is trusted without asking the database again.
const TTL: Duration = Duration::from_secs(30);
/// Most tokens kept; past it, expired entries are dropped, and if none were, all of them.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct TokenCache {
    users: Mutex<HashMap<String, (User, Instant)>>,
}

impl TokenCache {
    /// The user of `token_hash` if it was seen less than `TTL` ago.
    pub fn get(&self, token_hash: &str) -> Option<User> {
        self.get_at(token_hash, Instant::now())
    }

    pub fn insert(&self, token_hash: &str, user: &User) {
        self.insert_at(token_hash, user, Instant::now())
    }

    fn get_at(&self, token_hash: &str, now: Instant) -> Option<User> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        match users.get(token_hash) {
            Some((user, seen)) if now.duration_since(*seen) < TTL => Some(user.clone()),
            _ => None,
        }
    }

    fn insert_at(&self, token_hash: &str, user: &User, now: Instant) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if users.len() >= CAPACITY && !users.contains_key(token_hash) {
            users.retain(|_, (_, seen)| now.duration_since(*seen) < TTL);
            if users.len() >= CAPACITY {
                users.clear();
            }
        }
        users.insert(token_hash.to_string(), (user.clone(), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            username: name.into(),
            email: format!("{name}@example.com"),
            is_admin: false,
            created_at: 0,
        }
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        assert!(cache.get_at("h", t0).is_none());
        cache.insert_at("h", &user("alice"), t0);
        let hit = cache.get_at("h", t0 + TTL - Duration::from_millis(1));
        assert_eq!(hit.map(|u| u.username), Some("alice".to_string()));
        assert!(cache.get_at("h", t0 + TTL).is_none());
        assert!(cache.get_at("other", t0).is_none());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_everything() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        for i in 0..CAPACITY {
            cache.insert_at(&format!("old{i}"), &user("a"), t0);
        }
        let later = t0 + TTL;
        cache.insert_at("new", &user("b"), later);
        assert!(cache.get_at("new", later).is_some());
        assert_eq!(
            cache.users.lock().unwrap().len(),
            1,
            "expired entries dropped"
        );

        for i in 0..CAPACITY - 1 {
            cache.insert_at(&format!("fresh{i}"), &user("c"), later);
        }
        cache.insert_at("newest", &user("d"), later);
        assert_eq!(cache.users.lock().unwrap().len(), 1, "all fresh: cleared");
        assert!(cache.get_at("newest", later).is_some());
        assert!(cache.get_at("new", later).is_none());
    }
}
