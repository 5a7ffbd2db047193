//! Security tests: integrity. What the API answers is what the store holds: moves move,
//! nothing grows without bound, and no file is committed into a folder that is gone.

use crate::common::{assert_error, TestServer};
use serde_json::{json, Value};

/// The names in a folder listing (`?parent=` or `?project=`), sorted.
async fn listed(s: &TestServer, t: &str, query: &str) -> Vec<String> {
    let r = s.get(t, &format!("/v2/files?{query}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut names: Vec<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn folder(s: &TestServer, t: &str, name: &str, place: Value) -> String {
    let mut body = json!({"name": name, "type": "folder"});
    body.as_object_mut()
        .unwrap()
        .extend(place.as_object().unwrap().clone());
    let r = s.post(t, "/v2/files", body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test]
async fn a_move_is_stored_and_refuses_clashes_and_cycles() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    let root = s.project(&t, "p").await["root_folder"]
        .as_str()
        .unwrap()
        .to_string();
    let dest = folder(&s, &t, "dest", json!({"project": "ann/p"})).await;
    let f = s.upload(&t, "ann/p", "f.txt", b"moved bytes").await;

    let moved = s
        .post(
            &t,
            &format!("/v2/files/{}/actions/move", id(&f)),
            json!({"parent": dest}),
        )
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    let got = s.get(&t, &format!("/v2/files/{}", id(&f))).await.body;
    assert_eq!(got["parent"], dest.as_str(), "GET shows the new parent");
    assert_eq!(listed(&s, &t, &format!("parent={dest}")).await, ["f.txt"]);
    assert_eq!(
        listed(&s, &t, "project=ann/p").await,
        ["dest"],
        "the file left the root folder"
    );
    let bytes = s.download(&t, id(&f), None).await.bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), b"moved bytes");

    // Back to the root under a new name, in one move.
    let back = s
        .post(
            &t,
            &format!("/v2/files/{}/actions/move", id(&f)),
            json!({"project": "ann/p", "name": "g.txt"}),
        )
        .await;
    assert_eq!(back.status, 200, "{:?}", back.body);
    let got = s.get(&t, &format!("/v2/files/{}", id(&f))).await.body;
    assert_eq!(
        (got["parent"].as_str(), got["name"].as_str()),
        (Some(root.as_str()), Some("g.txt"))
    );
    assert_eq!(listed(&s, &t, "project=ann/p").await, ["dest", "g.txt"]);

    // A name taken in the destination: 409, and nothing moves.
    let other = s.upload(&t, "ann/p", "h.txt", b"h").await;
    s.post(
        &t,
        &format!("/v2/files/{}/actions/move", id(&other)),
        json!({"parent": dest}),
    )
    .await;
    let clash = s
        .post(
            &t,
            &format!("/v2/files/{}/actions/move", id(&f)),
            json!({"parent": dest, "name": "h.txt"}),
        )
        .await;
    assert_error(&clash, 409, 5003);
    let got = s.get(&t, &format!("/v2/files/{}", id(&f))).await.body;
    assert_eq!(
        (got["parent"].as_str(), got["name"].as_str()),
        (Some(root.as_str()), Some("g.txt"))
    );

    // A folder into itself or into its own sub-folder: 400, and nothing moves.
    let sub = folder(&s, &t, "sub", json!({"parent": dest})).await;
    let deep = folder(&s, &t, "deep", json!({"parent": sub})).await;
    for target in [&dest, &sub, &deep] {
        let cycle = s
            .post(
                &t,
                &format!("/v2/files/{dest}/actions/move"),
                json!({"parent": target}),
            )
            .await;
        assert_error(&cycle, 400, 5033);
    }
    let got = s.get(&t, &format!("/v2/files/{dest}")).await.body;
    assert_eq!(got["parent"], root.as_str());
    assert_eq!(
        listed(&s, &t, &format!("parent={deep}")).await,
        Vec::<String>::new()
    );

    // A sub-folder may move up, out of its parent, with what it holds.
    let up = s
        .post(
            &t,
            &format!("/v2/files/{sub}/actions/move"),
            json!({"project": "ann/p"}),
        )
        .await;
    assert_eq!(up.status, 200, "{:?}", up.body);
    assert_eq!(
        listed(&s, &t, "project=ann/p").await,
        ["dest", "g.txt", "sub"]
    );
    assert_eq!(listed(&s, &t, &format!("parent={sub}")).await, ["deep"]);
    assert_eq!(listed(&s, &t, &format!("parent={dest}")).await, ["h.txt"]);

    // Another project is refused as before.
    s.project(&t, "q").await;
    assert_error(
        &s.post(
            &t,
            &format!("/v2/files/{}/actions/move", id(&f)),
            json!({"project": "ann/q"}),
        )
        .await,
        400,
        5015,
    );
}

#[tokio::test]
async fn an_upload_into_a_folder_deleted_meanwhile_commits_nothing() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    let dir = folder(&s, &t, "dir", json!({"project": "ann/p"})).await;
    let init = s
        .post(
            &t,
            "/v2/upload/multipart",
            json!({"parent": dir, "name": "late.txt", "size": 5}),
        )
        .await;
    assert_eq!(init.status, 200, "{:?}", init.body);
    let upload = init.body["upload_id"].as_str().unwrap().to_string();
    let url = s
        .get(&t, &format!("/v2/upload/multipart/{upload}/part/1"))
        .await
        .body["url"]
        .as_str()
        .unwrap()
        .to_string();
    let put = s.http.put(&url).body("hello").send().await.unwrap();
    assert_eq!(put.status(), 200);

    // The folder is still empty (the upload is no file yet), so it can go.
    let gone = s
        .call(
            reqwest::Method::DELETE,
            &t,
            &format!("/v2/files/{dir}"),
            None,
        )
        .await;
    assert_eq!(gone.status, 204, "{:?}", gone.body);
    let done = s
        .post(
            &t,
            &format!("/v2/upload/multipart/{upload}/complete"),
            Value::Null,
        )
        .await;
    assert_error(&done, 404, 5026);

    assert_eq!(listed(&s, &t, "project=ann/p").await, Vec::<String>::new());
    assert_error(
        &s.get(&t, &format!("/v2/files/{dir}/list")).await,
        404,
        5002,
    );
    // The bytes stay with the upload, which its owner (or the upload sweeper) removes.
    assert_eq!(
        s.get(&t, &format!("/v2/upload/multipart/{upload}"))
            .await
            .status,
        200
    );
    let aborted = s
        .call(
            reqwest::Method::DELETE,
            &t,
            &format!("/v2/upload/multipart/{upload}"),
            None,
        )
        .await;
    assert_eq!(aborted.status, 204);
    s.sweep().await;
    assert_eq!(
        s.stored_objects(),
        Vec::<String>::new(),
        "no bytes are left"
    );
}

/// Asserts a 400 whose message names `limit`.
fn assert_limit(r: &crate::common::Reply, limit: &str) {
    assert_error(r, 400, 90000);
    let message = r.body["message"].as_str().unwrap();
    assert!(message.contains(limit), "{message:?} names {limit}");
}

#[tokio::test]
async fn metadata_tags_and_settings_have_limits_that_merges_cannot_pass() {
    const PATCH: reqwest::Method = reqwest::Method::PATCH;
    const PUT: reqwest::Method = reqwest::Method::PUT;
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    let f = s.upload(&t, "ann/p", "f.txt", b"x").await;
    let file = format!("/v2/files/{}", id(&f));
    let meta = format!("{file}/metadata");

    // Each PATCH is small; together they would pass 64 KiB.
    let chunk = "m".repeat(40 * 1024);
    let first = s.call(PATCH, &t, &meta, Some(json!({"a": chunk}))).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let second = s.call(PATCH, &t, &meta, Some(json!({"b": chunk}))).await;
    assert_limit(&second, "65536");
    let third = s
        .call(PATCH, &t, &file, Some(json!({"metadata": {"b": chunk}})))
        .await;
    assert_limit(&third, "65536");
    let kept = s.get(&t, &meta).await.body;
    assert_eq!(
        kept.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["a"],
        "a refused merge stores nothing"
    );

    let many: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
    assert_limit(
        &s.call(PUT, &t, &meta, Some(Value::Object(many))).await,
        "100",
    );
    let long_key = json!({"k".repeat(129): 1});
    assert_limit(&s.call(PATCH, &t, &meta, Some(long_key)).await, "128");
    // Removing keys is always possible, and makes room again.
    let room = s
        .call(PATCH, &t, &meta, Some(json!({"a": null, "b": chunk})))
        .await;
    assert_eq!(room.status, 200, "{:?}", room.body);

    let tags: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    assert_limit(
        &s.call(PUT, &t, &format!("{file}/tags"), Some(json!(tags)))
            .await,
        "100",
    );
    assert_limit(
        &s.call(PATCH, &t, &file, Some(json!({"tags": ["x".repeat(129)]})))
            .await,
        "128",
    );
    let ok = s
        .call(PUT, &t, &format!("{file}/tags"), Some(json!(tags[..100])))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(
        s.get(&t, &file).await.body["tags"]
            .as_array()
            .unwrap()
            .len(),
        100
    );

    // Project settings merge the same way; tags are held to the file limits.
    let project = "/v2/projects/ann/p";
    let half = "s".repeat(10 * 1024);
    let first = s
        .call(PATCH, &t, project, Some(json!({"settings": {"a": half}})))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_limit(
        &s.call(PATCH, &t, project, Some(json!({"settings": {"b": half}})))
            .await,
        "16384",
    );
    assert!(s.get(&t, project).await.body["settings"].get("b").is_none());
    assert_limit(
        &s.call(PATCH, &t, project, Some(json!({"tags": tags})))
            .await,
        "100",
    );
    assert_limit(
        &s.post(
            &t,
            "/v2/projects",
            json!({"name": "big", "settings": {"a": "s".repeat(17 * 1024)}}),
        )
        .await,
        "16384",
    );
    assert_limit(
        &s.post(
            &t,
            "/v2/projects",
            json!({"name": "tagged", "tags": ["x".repeat(129)]}),
        )
        .await,
        "128",
    );
}
