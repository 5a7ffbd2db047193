//! Per-caller fixed-window rate limiting (default 1000 requests per 5 minutes, as SBG documents).
//! The window's end is what `X-RateLimit-Reset` reports, which a fixed window gives exactly.
//! Counters live in this process: each node of a cluster limits on its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds when the window ends.
    pub reset: u64,
    pub allowed: bool,
}

pub struct RateLimiter {
    limit: u32,
    window_secs: u64,
    windows: Mutex<HashMap<String, (u64, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window_secs: u64) -> Self {
        Self {
            limit,
            window_secs: window_secs.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request for `key` (unless `count` is false) and says whether it may proceed.
    pub fn check(&self, key: &str, count: bool) -> Quota {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.check_at(key, count, now)
    }

    fn check_at(&self, key: &str, count: bool, now: u64) -> Quota {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now < *start + self.window_secs);
        }
        let entry = windows.entry(key.to_string()).or_insert((now, 0));
        if now >= entry.0 + self.window_secs {
            *entry = (now, 0);
        }
        let allowed = !count || entry.1 < self.limit;
        if count && allowed {
            entry.1 += 1;
        }
        Quota {
            limit: self.limit,
            remaining: self.limit.saturating_sub(entry.1),
            reset: entry.0 + self.window_secs,
            allowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_resets_with_the_window() {
        let rl = RateLimiter::new(2, 300);
        assert!(rl.check_at("a", true, 1000).allowed);
        let q = rl.check_at("a", true, 1001);
        assert_eq!((q.allowed, q.remaining, q.reset), (true, 0, 1300));
        assert!(!rl.check_at("a", true, 1002).allowed);
        assert!(
            rl.check_at("a", false, 1002).allowed,
            "uncounted calls always pass"
        );
        assert!(rl.check_at("b", true, 1002).allowed, "keys are independent");
        let fresh = rl.check_at("a", true, 1300);
        assert_eq!(
            (fresh.allowed, fresh.remaining, fresh.reset),
            (true, 1, 1600)
        );
    }
}
