//! The multipart upload protocol and cleanup of aborted and abandoned uploads.

use crate::common::{assert_error, TestServer};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn multipart_upload_round_trips() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    let body: Vec<u8> = (0..12 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let f = s.upload(&t, "ann/p", "big.bin", &body).await;
    assert_eq!(f["size"], body.len());
    assert_eq!(f["checksums"]["md5"], format!("{:x}", md5_of(&body)));
    let got = s
        .download(&t, f["id"].as_str().unwrap(), None)
        .await
        .bytes()
        .await
        .unwrap();
    assert!(got.as_ref() == &body[..]);
    let empty = s.upload(&t, "ann/p", "empty", b"").await;
    assert_eq!(empty["size"], 0);
    assert_eq!(
        s.download(&t, empty["id"].as_str().unwrap(), None)
            .await
            .bytes()
            .await
            .unwrap()
            .len(),
        0
    );
    assert!(
        s.stored_objects()
            .iter()
            .all(|k| !k.starts_with("uploads/")),
        "parts are gone after completion"
    );
}

fn md5_of(data: &[u8]) -> impl std::fmt::LowerHex {
    use md5::Digest;
    md5::Md5::digest(data)
}

#[tokio::test]
async fn upload_errors() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    let bob = s.user("bob").await;
    s.project(&t, "p").await;
    s.upload(&t, "ann/p", "taken", b"x").await;
    assert_error(
        &s.post(
            &t,
            "/v2/upload/multipart",
            json!({"project": "ann/p", "name": "taken", "size": 1}),
        )
        .await,
        409,
        8004,
    );
    let over = s
        .post(
            &t,
            "/v2/upload/multipart?overwrite=True",
            json!({"project": "ann/p", "name": "taken", "size": 1}),
        )
        .await;
    assert_eq!(over.status, 200);
    assert_error(
        &s.post(
            &t,
            "/v2/upload/multipart",
            json!({"project": "ann/p", "name": "a/b", "size": 1}),
        )
        .await,
        400,
        5024,
    );
    assert_error(
        &s.post(
            &t,
            "/v2/upload/multipart",
            json!({"project": "ann/p", "name": "n", "size": -1}),
        )
        .await,
        400,
        8012,
    );
    assert_error(
        &s.post(
            &bob,
            "/v2/upload/multipart",
            json!({"project": "ann/p", "name": "n", "size": 1}),
        )
        .await,
        404,
        3002,
    );

    let init = s
        .post(
            &t,
            "/v2/upload/multipart",
            json!({"project": "ann/p", "name": "n", "size": 10}),
        )
        .await;
    let id = init.body["upload_id"].as_str().unwrap();
    assert_error(
        &s.get(&bob, &format!("/v2/upload/multipart/{id}/part/1"))
            .await,
        404,
        8003,
    );
    assert_error(
        &s.get(&t, &format!("/v2/upload/multipart/{id}/part/2"))
            .await,
        400,
        8011,
    );
    assert_error(
        &s.call(
            Method::POST,
            &t,
            &format!("/v2/upload/multipart/{id}/complete"),
            None,
        )
        .await,
        400,
        8007,
    );
    let url = s
        .get(&t, &format!("/v2/upload/multipart/{id}/part/1"))
        .await
        .body["url"]
        .as_str()
        .unwrap()
        .to_string();
    let short = s.http.put(&url).body(vec![1u8; 3]).send().await.unwrap();
    assert_eq!(short.status(), 400, "a part must have its exact length");
    let long = s.http.put(&url).body(vec![1u8; 30]).send().await.unwrap();
    assert_eq!(long.status(), 400);
    let put = s.http.put(&url).body(vec![1u8; 10]).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let wrong = s
        .post(
            &t,
            &format!("/v2/upload/multipart/{id}/part/"),
            json!({"part_number": 1, "response": {"headers": {"ETag": "bad"}}}),
        )
        .await;
    assert_error(&wrong, 400, 8008);
}

#[tokio::test]
async fn aborted_uploads_leave_nothing_behind() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    let init = s.post(&t, "/v2/upload/multipart", json!({"project": "ann/p", "name": "n", "size": 6 * 1024 * 1024, "part_size": 5 * 1024 * 1024})).await;
    let id = init.body["upload_id"].as_str().unwrap();
    let url = s
        .get(&t, &format!("/v2/upload/multipart/{id}/part/1"))
        .await
        .body["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.http
            .put(&url)
            .body(vec![0u8; 5 * 1024 * 1024])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(!s.stored_objects().is_empty());
    assert_eq!(
        s.call(
            Method::DELETE,
            &t,
            &format!("/v2/upload/multipart/{id}"),
            Some(json!({}))
        )
        .await
        .status,
        204
    );
    assert!(s.stored_objects().is_empty(), "{:?}", s.stored_objects());
    assert_error(
        &s.get(&t, &format!("/v2/upload/multipart/{id}")).await,
        404,
        8003,
    );
    assert_eq!(
        s.http
            .put(&url)
            .body(vec![0u8; 5 * 1024 * 1024])
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert!(
        s.stored_objects().is_empty(),
        "a part arriving after the abort is not kept"
    );
}

#[tokio::test]
async fn abandoned_uploads_are_swept() {
    let s = TestServer::start_with(|c| c.upload_ttl = Duration::from_millis(50)).await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    let init = s
        .post(
            &t,
            "/v2/upload/multipart",
            json!({"project": "ann/p", "name": "n", "size": 4}),
        )
        .await;
    let id = init.body["upload_id"].as_str().unwrap();
    let url = s
        .get(&t, &format!("/v2/upload/multipart/{id}/part/1"))
        .await
        .body["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.http
            .put(&url)
            .body(vec![0u8; 4])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.sweep().await;
    assert!(s.stored_objects().is_empty(), "{:?}", s.stored_objects());
    assert!(s
        .running
        .state
        .store
        .get_upload(id)
        .await
        .unwrap()
        .is_none());
}
