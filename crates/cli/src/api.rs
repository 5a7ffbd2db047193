//! A small client of the public SBG API: it counts its requests, waits out rate limits and
//! retries what is safe to retry.

use crate::connect::Connection;
use crate::Fail;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a run keeps retrying a lost connection before it gives up (and can be resumed).
const RETRY_FOR: Duration = Duration::from_secs(300);

pub struct Api {
    http: reqwest::Client,
    conn: Connection,
    requests: AtomicU64,
    rate_limited: AtomicU64,
}

/// An answer the API gave, or that it could not be reached.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// The API answered with an error: SBG's code and message.
    Status {
        status: u16,
        code: i64,
        message: String,
    },
    Connection(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status {
                status,
                code,
                message,
            } => write!(f, "{message} (HTTP {status}, code {code})"),
            Self::Connection(why) => write!(f, "{why}"),
        }
    }
}

/// A successful answer: the body, and the total a list reports.
pub struct Reply {
    pub body: Value,
    pub total: Option<u64>,
}

/// Whether a request may be sent again after the connection failed mid-way.
#[derive(Clone, Copy, PartialEq)]
pub enum Retry {
    /// Reads, and writes the server recognises by their Idempotency-Key.
    Safe,
    /// Creations: the caller finds out what happened before sending again.
    Never,
}

impl Api {
    pub fn new(conn: Connection) -> Result<Self, Fail> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("egress-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Fail::Usage(format!("cannot set up HTTPS: {e}")))?;
        Ok(Self {
            http,
            conn,
            requests: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        })
    }

    pub fn base(&self) -> &str {
        &self.conn.base
    }

    /// Requests sent so far, retries included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests the server refused with 429 (and that were sent again after the wait).
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Reply, ApiError> {
        self.call(Method::GET, path, query, None, None, Retry::Safe)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply, ApiError> {
        self.call(Method::POST, path, &[], Some(body), None, Retry::Safe)
            .await
    }

    /// Sends one request. A 429 waits for `X-RateLimit-Reset` and tries again, however long
    /// that takes; lost connections and 502/503/504 are retried for a while when `retry`
    /// allows.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        idempotency_key: Option<&str>,
        retry: Retry,
    ) -> Result<Reply, ApiError> {
        let url = format!("{}{path}", self.conn.base);
        let started = std::time::Instant::now();
        let mut backoff = Duration::from_millis(500);
        loop {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .query(query)
                .header("X-SBG-Auth-Token", &self.conn.token);
            if let Some(body) = body {
                req = req.json(body);
            }
            if let Some(key) = idempotency_key {
                req = req.header("Idempotency-Key", key);
            }
            let outcome = match req.send().await {
                Ok(resp) if resp.status() == StatusCode::TOO_MANY_REQUESTS => {
                    self.rate_limited.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(until_reset(resp.headers())).await;
                    continue;
                }
                Ok(resp) => read(resp).await,
                Err(e) => Err(ApiError::Connection(connection_error(&self.conn, &e))),
            };
            let transient = match &outcome {
                Err(ApiError::Connection(_)) => true,
                Err(ApiError::Status { status, .. }) => matches!(status, 502..=504),
                Ok(_) => false,
            };
            if !transient || retry == Retry::Never || started.elapsed() > RETRY_FOR {
                return outcome;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

async fn read(resp: reqwest::Response) -> Result<Reply, ApiError> {
    let status = resp.status();
    let total = resp
        .headers()
        .get("x-total-matching-query")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ApiError::Connection(format!("the answer was cut off: {e}")))?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(Reply { body, total });
    }
    let message = body["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    Err(ApiError::Status {
        status: status.as_u16(),
        code: body["code"].as_i64().unwrap_or(status.as_u16().into()),
        message,
    })
}

fn connection_error(conn: &Connection, e: &reqwest::Error) -> String {
    let mut why = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        why = format!("{why}: {s}");
        source = s.source();
    }
    format!("cannot reach {} (from {}): {why}", conn.base, conn.source)
}

/// `X-RateLimit-Reset` is the Unix time (seconds) the window ends; a second more covers clock
/// skew. Without the header, a minute.
fn until_reset(headers: &reqwest::header::HeaderMap) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map(|reset| Duration::from_secs(reset.saturating_sub(now).clamp(0, 900) + 1))
        .unwrap_or(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn rate_limit_waits_for_the_window_end_plus_a_second() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from(now + 5));
        let wait = until_reset(&h).as_secs();
        assert!((5..=6).contains(&wait), "{wait}");
        h.insert("x-ratelimit-reset", HeaderValue::from(now - 100));
        assert_eq!(until_reset(&h).as_secs(), 1);
        assert_eq!(until_reset(&HeaderMap::new()).as_secs(), 60);
    }
}
