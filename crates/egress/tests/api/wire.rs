//! Conventions every route shares: auth, errors, rate limits, routing, bodies.

use crate::common::{assert_error, TestServer};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn auth_is_required_and_both_header_forms_work() {
    let s = TestServer::start().await;
    let token = s.user("ann").await;
    assert_error(&s.get("", "/v2/user").await, 401, 90001);
    assert_error(
        &s.get("0123456789abcdef0123456789abcdef", "/v2/user").await,
        401,
        90001,
    );
    let me = s.get(&token, "/v2/user").await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["username"], "ann");
    assert_eq!(me.body["href"], format!("{}/v2/users/ann", s.base));
    let bearer = s
        .http
        .get(format!("{}/v2/user", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    assert_eq!(
        s.get(&token, "/v2/users/ann").await.body["email"],
        "ann@example.org"
    );
    assert_error(&s.get(&token, "/v2/users/nobody").await, 404, 2002);
}

#[tokio::test]
async fn a_new_token_works_at_once_and_each_token_keeps_its_own_user() {
    let s = TestServer::start().await;
    let token = egress_core::util::new_token();
    assert_error(&s.get(&token, "/v2/user").await, 401, 90001);
    // Refused a moment ago, but not remembered as unknown.
    s.user_with_token("cat", &token, false).await;
    let other = s.user("dan").await;
    // The second pass is answered from the cache of recently seen tokens.
    for _ in 0..2 {
        assert_eq!(s.get(&token, "/v2/user").await.body["username"], "cat");
        assert_eq!(s.get(&other, "/v2/user").await.body["username"], "dan");
    }
    assert_error(&s.get(&format!("{token}x"), "/v2/user").await, 401, 90001);
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    let s = TestServer::start().await;
    let token = s.user("ann").await;
    let db = std::fs::read(s.data_dir().join("egress.db")).unwrap();
    let wal = std::fs::read(s.data_dir().join("egress.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "plaintext token found in the database"
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let s = TestServer::start().await;
    let token = s.user("ann").await;
    assert_error(&s.get(&token, "/v2/nothing/here").await, 404, 90003);
    assert_error(
        &s.call(Method::DELETE, &token, "/v2/user", None).await,
        405,
        90006,
    );
    assert_error(&s.get(&token, "/v2/projects/a/b/c/d/e").await, 404, 90003);
}

#[tokio::test]
async fn bad_bodies_are_refused_clearly() {
    let s = TestServer::start_with(|c| c.body_limit = 4096).await;
    let token = s.user("ann").await;
    let malformed = s
        .http
        .post(format!("{}/v2/projects", s.base))
        .header("X-SBG-Auth-Token", &token)
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(body["code"], 90009);
    assert_error(
        &s.post(&token, "/v2/projects", json!({"name": "x".repeat(8000)}))
            .await,
        413,
        90000,
    );
    assert_error(
        &s.post(&token, "/v2/projects", json!({"name": 42})).await,
        400,
        90009,
    );
    assert_error(
        &s.call(Method::POST, &token, "/v2/projects", None).await,
        400,
        90009,
    );
}

#[tokio::test]
async fn root_lists_endpoints_without_auth() {
    let s = TestServer::start().await;
    let r = s.get("", "/v2/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["files_url"], format!("{}/v2/files", s.base));
    assert_eq!(r.body["storage_url"], format!("{}/v2/storage", s.base));
    assert!(r.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn rate_limit_headers_and_429() {
    let s = TestServer::start_with(|c| c.rate_limit = 3).await;
    let token = s.user("ann").await;
    let other = s.user("bob").await;
    let first = s.get(&token, "/v2/user").await;
    assert_eq!(first.headers["x-ratelimit-limit"], "3");
    assert_eq!(first.headers["x-ratelimit-remaining"], "2");
    let reset: u64 = first.headers["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > 1_700_000_000);
    let status = s.get(&token, "/v2/rate_limit").await;
    assert_eq!(
        status.body["rate"]["remaining"], 2,
        "GET /v2/rate_limit is not counted"
    );
    s.get(&token, "/v2/user").await;
    s.get(&token, "/v2/user").await;
    let limited = s.get(&token, "/v2/user").await;
    assert_error(&limited, 429, 1000);
    assert!(
        !limited.headers.contains_key("retry-after"),
        "Retry-After would make the client retry on its own"
    );
    assert_eq!(limited.headers["x-ratelimit-remaining"], "0");
    assert_eq!(
        s.get(&other, "/v2/user").await.status,
        200,
        "limits are per user"
    );
}
