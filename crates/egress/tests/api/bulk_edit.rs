//! Bulk changes of file details: `POST /v2/bulk/files/update` (replace) and
//! `POST /v2/bulk/files/edit` (merge), and `POST /v2/files/search` (not served).

use crate::common::{assert_error, bulk_values, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const UPDATE: &str = "/v2/bulk/files/update";
const EDIT: &str = "/v2/bulk/files/edit";

/// ann/p with a.txt (metadata {sample: s1, lane: 1}, tags [red]) and b.txt; returns the token
/// and both ids.
async fn two_files(s: &TestServer) -> (String, String, String) {
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    let a = s.upload(&t, "ann/p", "a.txt", b"a").await;
    let b = s.upload(&t, "ann/p", "b.txt", b"b").await;
    let a = a["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            Method::PATCH,
            &t,
            &format!("/v2/files/{a}"),
            Some(json!({"metadata": {"sample": "s1", "lane": "1"}, "tags": ["red"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    (t, a, b["id"].as_str().unwrap().to_string())
}

async fn file(s: &TestServer, t: &str, id: &str) -> Value {
    let r = s.get(t, &format!("/v2/files/{id}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn update_replaces_name_metadata_and_tags_and_clears_what_is_left_out() {
    let s = TestServer::start().await;
    let (t, a, b) = two_files(&s).await;
    let r = s
        .post(
            &t,
            UPDATE,
            json!({"items": [
                {"id": a, "name": "a2.txt", "metadata": {"lane": "2", "gone": null}, "tags": ["blue"]},
                {"id": b, "metadata": null},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let got = bulk_values(&r.body, "/resource");
    assert_eq!(got[0]["name"], "a2.txt");
    assert_eq!(
        got[0]["metadata"],
        json!({"lane": "2"}),
        "replaced, not merged"
    );
    assert_eq!(got[0]["tags"], json!(["blue"]));
    assert_eq!(
        (&got[1]["name"], &got[1]["tags"]),
        (&json!("b.txt"), &json!([]))
    );
    assert_eq!(file(&s, &t, &a).await["metadata"], json!({"lane": "2"}));
    // Left out entirely: metadata and tags become empty, the name stays.
    let r = s.post(&t, UPDATE, json!({"items": [{"id": a}]})).await;
    let got = &bulk_values(&r.body, "/resource")[0];
    assert_eq!(
        (&got["name"], &got["metadata"], &got["tags"]),
        (&json!("a2.txt"), &json!({}), &json!([]))
    );
}

#[tokio::test]
async fn edit_merges_metadata_and_keeps_what_is_left_out() {
    let s = TestServer::start().await;
    let (t, a, b) = two_files(&s).await;
    let r = s
        .post(
            &t,
            EDIT,
            json!({"items": [
                {"id": a, "metadata": {"lane": "2", "sample": null, "new": "x"}},
                {"file_id": b, "name": "b2.txt", "tags": ["t"]},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let got = bulk_values(&r.body, "/resource");
    assert_eq!(got[0]["metadata"], json!({"lane": "2", "new": "x"}));
    assert_eq!(
        (&got[0]["name"], &got[0]["tags"]),
        (&json!("a.txt"), &json!(["red"]))
    );
    assert_eq!(
        (&got[1]["name"], &got[1]["tags"]),
        (&json!("b2.txt"), &json!(["t"]))
    );
    assert_eq!(file(&s, &t, &b).await["name"], "b2.txt");
    // An item with only its id changes nothing.
    let r = s.post(&t, EDIT, json!({"items": [{"id": a}]})).await;
    assert_eq!(
        bulk_values(&r.body, "/resource/metadata")[0],
        json!({"lane": "2", "new": "x"})
    );
}

#[tokio::test]
async fn each_item_gets_its_own_result_in_order() {
    let s = TestServer::start().await;
    let (t, a, b) = two_files(&s).await;
    let root = s.get(&t, "/v2/projects/ann/p").await.body["root_folder"].clone();
    let too_big: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("k{i}"), json!("v"))).collect();
    for path in [UPDATE, EDIT] {
        let r = s
            .post(
                &t,
                path,
                json!({"items": [
                    {"id": "nope"},
                    {"name": "x.txt"},
                    {"id": a, "name": "bad/name"},
                    "not an object",
                    {"id": a, "metadata": too_big},
                    {"id": a, "name": "b.txt"},
                    {"id": a, "tags": "red"},
                    {"id": a, "colour": "red"},
                    {"id": a, "file_id": b},
                    {"id": 5},
                    {"id": root, "name": "renamed-root"},
                    {"id": b, "tags": ["ok"]},
                ]}),
            )
            .await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert_eq!(
            bulk_values(&r.body, "/error/code"),
            [
                json!(5002),
                json!(5004),
                json!(5024),
                json!(5033),
                json!(90000),
                json!(5003),
                json!(5033),
                json!(5033),
                json!(5033),
                json!(5033),
                json!(5008),
                Value::Null,
            ],
            "{path}: {:?}",
            r.body
        );
        assert_eq!(bulk_values(&r.body, "/resource/tags")[11], json!(["ok"]));
        for status in bulk_values(&r.body, "/error/status").iter().take(11) {
            assert!(status.is_u64(), "{:?}", r.body);
        }
    }
    // Nothing of the failed items was stored.
    let got = file(&s, &t, &a).await;
    assert_eq!(got["name"], "a.txt");
}

#[tokio::test]
async fn rights_are_checked_per_item() {
    let s = TestServer::start().await;
    let (t, a, _) = two_files(&s).await;
    let bob = s.user("bob").await;
    s.project(&bob, "mine").await;
    let own = s.upload(&bob, "bob/mine", "own.txt", b"o").await;
    let own = own["id"].as_str().unwrap();
    for path in [UPDATE, EDIT] {
        let r = s
            .post(
                &bob,
                path,
                json!({"items": [{"id": a, "name": "stolen"}, {"id": own, "tags": ["x"]}]}),
            )
            .await;
        assert_eq!(
            bulk_values(&r.body, "/error/code"),
            [json!(5002), Value::Null],
            "not a member: ann's file is invisible"
        );
    }
    s.add_member(
        &t,
        "/v2/projects/ann/p/members",
        "bob",
        json!({"read": true}),
    )
    .await;
    for path in [UPDATE, EDIT] {
        let r = s
            .post(&bob, path, json!({"items": [{"id": a, "name": "stolen"}]}))
            .await;
        assert_eq!(
            bulk_values(&r.body, "/error/code"),
            [json!(5001)],
            "read only"
        );
    }
    assert_eq!(file(&s, &t, &a).await["name"], "a.txt");
    let r = s
        .call(
            Method::PATCH,
            &t,
            "/v2/projects/ann/p/members/bob/permissions",
            Some(json!({"write": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s
        .post(
            &bob,
            EDIT,
            json!({"items": [{"id": a, "name": "by-bob.txt"}]}),
        )
        .await;
    assert_eq!(
        bulk_values(&r.body, "/resource/name"),
        [json!("by-bob.txt")]
    );
}

#[tokio::test]
async fn calls_wrong_as_a_whole_are_refused() {
    let s = TestServer::start().await;
    let (t, a, _) = two_files(&s).await;
    let many: Vec<Value> = (0..101).map(|_| json!({"id": a})).collect();
    for path in [UPDATE, EDIT] {
        assert_error(&s.post(&t, path, json!({"items": many})).await, 400, 90000);
        assert_error(&s.post(&t, path, json!({"items": []})).await, 400, 90000);
        assert_error(&s.post(&t, path, json!({"items": "x"})).await, 400, 90009);
        assert_error(&s.post(&t, path, json!({})).await, 400, 90009);
        assert_error(
            &s.post("bad-token", path, json!({"items": []})).await,
            401,
            90001,
        );
    }
    // A hundred items are fine.
    let hundred: Vec<Value> = (0..100).map(|_| json!({"id": a, "tags": ["x"]})).collect();
    let r = s.post(&t, EDIT, json!({"items": hundred})).await;
    assert_eq!(bulk_values(&r.body, "/resource/id").len(), 100);
}

#[tokio::test]
async fn file_search_is_not_served() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    let r = s
        .post(
            &t,
            "/v2/files/search?limit=5",
            json!({"query": "name = 'x'"}),
        )
        .await;
    assert_error(&r, 501, 90000);
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("GET /v2/files"));
    assert_error(
        &s.post("bad-token", "/v2/files/search", json!({"query": "x"}))
            .await,
        401,
        90001,
    );
}
