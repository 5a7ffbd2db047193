//! Async bulk file jobs: `POST /v2/async/files/{copy,move,delete}`, their getters and the list.

use crate::common::{assert_error, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

/// Submits a job and returns it once FINISHED.
async fn run(s: &TestServer, token: &str, op: &str, items: Value) -> Value {
    let r = s
        .post(
            token,
            &format!("/v2/async/files/{op}"),
            json!({ "items": items }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "SUBMITTED");
    assert_eq!(r.body["type"], op.to_uppercase());
    assert_eq!(r.body["result"], json!([]));
    let id = r.body["id"].as_str().unwrap();
    let href = format!("{}/v2/async/files/{op}/{id}", s.base);
    assert_eq!(r.body["href"], href.as_str());
    let job = s.finished(token, &href).await;
    assert_eq!(job["total_files"], items.as_array().unwrap().len());
    assert!(job["started_on"].as_str().is_some_and(|d| d.ends_with('Z')));
    assert!(job["finished_on"]
        .as_str()
        .is_some_and(|d| d.ends_with('Z')));
    assert_eq!(
        job["result"].as_array().unwrap().len(),
        items.as_array().unwrap().len(),
        "one entry per item"
    );
    job
}

/// The SBG code of each result entry (`0` for a resource).
fn codes(job: &Value) -> Vec<u64> {
    job["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["error"]["code"].as_u64().unwrap_or(0))
        .collect()
}

fn resource(job: &Value, i: usize) -> &Value {
    let r = &job["result"][i]["resource"];
    assert!(r.is_object(), "entry {i}: {:?}", job["result"][i]);
    r
}

async fn children(s: &TestServer, token: &str, query: &str) -> Vec<Value> {
    let r = s.get(token, &format!("/v2/files?{query}&limit=100")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

fn names(files: &[Value]) -> Vec<&str> {
    files.iter().map(|f| f["name"].as_str().unwrap()).collect()
}

async fn folder(s: &TestServer, token: &str, name: &str, place: Value) -> Value {
    let mut body = json!({"name": name, "type": "FOLDER"});
    body.as_object_mut()
        .unwrap()
        .extend(place.as_object().unwrap().clone());
    let r = s.post(token, "/v2/files", body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn copy_takes_references_keeps_the_tree_and_reports_each_item_in_order() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    s.project(&t, "q").await;
    let a = s.upload(&t, "ann/p", "a.txt", b"alpha").await;
    let d = folder(&s, &t, "d", json!({"project": "ann/p"})).await;
    let e = folder(&s, &t, "e", json!({"parent": d["id"]})).await;
    let c = s.upload(&t, "ann/p", "c.txt", b"gamma").await;
    let moved = s
        .post(
            &t,
            &format!("/v2/files/{}/actions/move", c["id"].as_str().unwrap()),
            json!({"parent": e["id"]}),
        )
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    let objects_before = s.stored_objects();

    let job = run(
        &s,
        &t,
        "copy",
        json!([
            {"file": a["id"], "project": "ann/q", "parent": "", "name": ""},
            {"file": d["id"], "project": "ann/q"},
            {"file": "0123456789abcdef01234567", "project": "ann/q"},
            {"file": a["id"], "parent": a["id"]},
            {"file": a["id"], "project": "ann/q", "name": "renamed.txt"},
            {"file": a["id"], "project": "ann/q"},
            {"file": a["id"], "project": "ann/q", "parent": d["id"]},
            {"file": a["id"]},
            {"file": a["id"], "project": "ann/q", "name": "a/b"},
            {"file": d["id"], "parent": e["id"]},
            {"file": "", "project": "ann/q"},
            {"file": a["id"], "project": "nobody/nothing"},
            {"file": a["id"], "project": "malformed"},
        ]),
    )
    .await;
    assert_eq!(
        codes(&job),
        [0, 0, 5002, 5022, 0, 0, 5031, 5029, 5024, 5033, 5033, 3002, 3012]
    );
    assert_eq!(
        (
            job["completed_files"].as_i64(),
            job["failed_files"].as_i64()
        ),
        (Some(4), Some(9))
    );
    let first = resource(&job, 0);
    assert_eq!(
        (first["name"].as_str(), first["project"].as_str()),
        (Some("a.txt"), Some("ann/q"))
    );
    assert_ne!(first["id"], a["id"]);
    assert_eq!(first["checksums"], a["checksums"]);
    assert_eq!(resource(&job, 4)["name"], "renamed.txt");
    assert_eq!(
        resource(&job, 5)["name"],
        "_1_a.txt",
        "a taken name is renamed as a single copy is"
    );
    let d_copy = resource(&job, 1);
    assert_eq!(
        (d_copy["type"].as_str(), d_copy["name"].as_str()),
        (Some("folder"), Some("d"))
    );

    // The folder's structure came along; no bytes were copied.
    let sub = children(
        &s,
        &t,
        &format!("parent={}", d_copy["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(names(&sub), ["e"]);
    let deep = children(
        &s,
        &t,
        &format!("parent={}", sub[0]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(names(&deep), ["c.txt"]);
    assert_eq!(deep[0]["project"], "ann/q");
    assert_eq!(s.stored_objects(), objects_before);
    let got = s.download(&t, deep[0]["id"].as_str().unwrap(), None).await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"gamma");

    // Deleting the originals frees nothing the copies still use.
    let r = s
        .post(
            &t,
            "/v2/bulk/files/delete",
            json!({"file_ids": [a["id"], c["id"]]}),
        )
        .await;
    assert_eq!(r.status, 200);
    s.sweep().await;
    assert_eq!(s.stored_objects(), objects_before);
    let got = s.download(&t, first["id"].as_str().unwrap(), None).await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"alpha");
}

#[tokio::test]
async fn move_keeps_file_ids_crosses_projects_and_merges_folders() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    s.project(&t, "q").await;
    let a = s.upload(&t, "ann/p", "a.txt", b"alpha").await;
    let clash = s.upload(&t, "ann/q", "a.txt", b"other").await;
    let d = folder(&s, &t, "d", json!({"project": "ann/p"})).await;
    let inner = s.upload(&t, "ann/p", "inner.txt", b"inner").await;
    let r = s
        .post(
            &t,
            &format!("/v2/files/{}/actions/move", inner["id"].as_str().unwrap()),
            json!({"parent": d["id"]}),
        )
        .await;
    assert_eq!(r.status, 200);
    // q already has a folder d with a file of its own: the moved d merges into it.
    let qd = folder(&s, &t, "d", json!({"project": "ann/q"})).await;
    let kept = s.upload(&t, "ann/q", "kept.txt", b"kept").await;
    let r = s
        .post(
            &t,
            &format!("/v2/files/{}/actions/move", kept["id"].as_str().unwrap()),
            json!({"parent": qd["id"]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let g = folder(&s, &t, "g", json!({"project": "ann/p"})).await;
    let sub = folder(&s, &t, "sub", json!({"parent": g["id"]})).await;

    let job = run(
        &s,
        &t,
        "move",
        json!([
            {"file": a["id"], "project": "ann/q", "parent": "", "name": ""},
            {"file": d["id"], "project": "ann/q"},
            {"file": g["id"], "parent": sub["id"]},
            {"file": "0123456789abcdef01234567", "project": "ann/q"},
            {"file": sub["id"], "project": "ann/p", "name": "sub2"},
        ]),
    )
    .await;
    assert_eq!(codes(&job), [0, 0, 5033, 5002, 0]);
    let moved = resource(&job, 0);
    assert_eq!(moved["id"], a["id"], "a moved file keeps its id");
    assert_eq!(
        (moved["project"].as_str(), moved["name"].as_str()),
        (Some("ann/q"), Some("_1_a.txt"))
    );
    let merged = resource(&job, 1);
    assert_eq!(merged["id"], qd["id"], "d merged into q's d");
    let in_d = children(&s, &t, &format!("parent={}", qd["id"].as_str().unwrap())).await;
    assert_eq!(names(&in_d), ["inner.txt", "kept.txt"]);
    assert_eq!(in_d[0]["id"], inner["id"]);
    assert_eq!(in_d[0]["project"], "ann/q");
    let r = s
        .get(&t, &format!("/v2/files/{}", d["id"].as_str().unwrap()))
        .await;
    assert_error(&r, 404, 5002);
    let renamed = resource(&job, 4);
    assert_eq!(renamed["name"], "sub2");
    assert_eq!(renamed["parent"], g["parent"]);
    assert_ne!(
        renamed["id"], sub["id"],
        "a moved folder gets a new id, as SBG documents"
    );
    let in_q = children(&s, &t, "project=ann/q").await;
    assert_eq!(names(&in_q), ["d", "_1_a.txt", "a.txt"]);
    assert_eq!(in_q[2]["id"], clash["id"]);
    let got = s.download(&t, a["id"].as_str().unwrap(), None).await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"alpha");
}

#[tokio::test]
async fn delete_takes_folders_with_their_contents_and_the_sweeper_frees_unshared_bytes() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    let p = s.project(&t, "p").await;
    s.project(&t, "q").await;
    let d = folder(&s, &t, "d", json!({"project": "ann/p"})).await;
    let e = folder(&s, &t, "e", json!({"parent": d["id"]})).await;
    let mut inside = Vec::new();
    for (i, parent) in [&d, &e, &e].iter().enumerate() {
        let f = s
            .upload(
                &t,
                "ann/p",
                &format!("f{i}.txt"),
                format!("file {i}").as_bytes(),
            )
            .await;
        let r = s
            .post(
                &t,
                &format!("/v2/files/{}/actions/move", f["id"].as_str().unwrap()),
                json!({"parent": parent["id"]}),
            )
            .await;
        assert_eq!(r.status, 200);
        inside.push(f);
    }
    let loose = s.upload(&t, "ann/p", "loose.txt", b"loose").await;
    // f1's bytes are shared with a copy in q, which keeps them.
    let r = s
        .post(
            &t,
            &format!(
                "/v2/files/{}/actions/copy",
                inside[1]["id"].as_str().unwrap()
            ),
            json!({"project": "ann/q"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let shared = r.body;
    let before = s.stored_objects();
    assert_eq!(before.len(), 4);

    let job = run(
        &s,
        &t,
        "delete",
        json!([
            {"file": d["id"]},
            {"file": "0123456789abcdef01234567"},
            {"file": loose["id"]},
            {"file": p["root_folder"]},
            {"file": loose["id"]},
            {"file": ""},
        ]),
    )
    .await;
    assert_eq!(codes(&job), [0, 5002, 0, 5001, 5002, 5033]);
    assert_eq!(resource(&job, 0)["id"], d["id"]);
    assert_eq!(resource(&job, 2)["name"], "loose.txt");
    for f in inside.iter().chain([&d, &e, &loose]) {
        let r = s
            .get(&t, &format!("/v2/files/{}", f["id"].as_str().unwrap()))
            .await;
        assert_error(&r, 404, 5002);
    }
    assert!(children(&s, &t, "project=ann/p").await.is_empty());
    s.sweep().await;
    let after = s.stored_objects();
    assert_eq!(after.len(), 1, "only the shared bytes are left: {after:?}");
    let got = s.download(&t, shared["id"].as_str().unwrap(), None).await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"file 1");
}

#[tokio::test]
async fn rights_are_checked_when_each_item_takes_effect() {
    let s = TestServer::start_with(|c| c.engine.run_jobs = false).await;
    let ann = s.user("ann").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    s.project(&ann, "p").await;
    s.project(&bob, "b").await;
    let a = s.upload(&ann, "ann/p", "a.txt", b"alpha").await;
    let b = s.upload(&ann, "ann/p", "b.txt", b"beta").await;
    let all = json!({"read": true, "copy": true, "write": true, "execute": false, "admin": false});
    s.add_member(&ann, "/v2/projects/ann/p/members", "bob", all)
        .await;
    let submit = |token: &str, op: &str, items: Value| {
        let (s, token, op) = (&s, token.to_string(), op.to_string());
        async move {
            let r = s
                .post(
                    &token,
                    &format!("/v2/async/files/{op}"),
                    json!({"items": items}),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            // The restarted server listens on another port: keep the path only.
            format!("/v2/async/files/{op}/{}", r.body["id"].as_str().unwrap())
        }
    };
    // Submitted while bob may write p; carol never could.
    let bob_delete = submit(&bob, "delete", json!([{"file": a["id"]}])).await;
    let bob_copy = submit(&bob, "copy", json!([{"file": b["id"], "project": "bob/b"}])).await;
    let bob_move = submit(&bob, "move", json!([{"file": b["id"], "project": "bob/b"}])).await;
    let carol_delete = submit(&carol, "delete", json!([{"file": a["id"]}])).await;
    let r = s
        .call(
            Method::PATCH,
            &ann,
            "/v2/projects/ann/p/members/bob/permissions",
            Some(json!({"read": true, "copy": true, "write": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let s = s.restart_with(|_| {}).await;
    let ended = |job: Value| job["result"][0]["error"]["code"].as_u64().unwrap_or(0);
    assert_eq!(ended(s.finished(&bob, &bob_delete).await), 5001);
    assert_eq!(
        ended(s.finished(&bob, &bob_copy).await),
        0,
        "copy needs only copy on the source"
    );
    assert_eq!(ended(s.finished(&bob, &bob_move).await), 5032);
    assert_eq!(ended(s.finished(&carol, &carol_delete).await), 5002);
    for f in [&a, &b] {
        let r = s
            .get(&ann, &format!("/v2/files/{}", f["id"].as_str().unwrap()))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["project"], "ann/p");
    }
}

#[tokio::test]
async fn whole_call_errors_unknown_jobs_and_other_users_jobs() {
    let s = TestServer::start_with(|c| c.engine.run_jobs = false).await;
    let ann = s.user("ann").await;
    let bob = s.user("bob").await;
    let item = json!({"file": "x"});
    let too_many: Vec<Value> = (0..101).map(|_| item.clone()).collect();
    for op in ["copy", "move", "delete"] {
        let path = format!("/v2/async/files/{op}");
        assert_error(
            &s.post(&ann, &path, json!({"items": too_many})).await,
            400,
            90000,
        );
        assert_error(&s.post(&ann, &path, json!({"items": []})).await, 400, 90000);
        assert_error(
            &s.post(&ann, &path, json!({"files": [item]})).await,
            400,
            90009,
        );
        assert_error(&s.post(&ann, &path, json!([item])).await, 400, 90009);
        for bad in [
            json!("x"),
            json!({"project": "ann/p"}),
            json!({"file": 5}),
            json!(null),
        ] {
            let r = s.post(&ann, &path, json!({"items": [item, bad]})).await;
            assert_error(&r, 400, 90009);
        }
        let r = s
            .call(Method::POST, "", &path, Some(json!({"items": [item]})))
            .await;
        assert_eq!(r.status, 401);
    }
    let hundred: Vec<Value> = (0..100).map(|_| item.clone()).collect();
    let r = s
        .post(&ann, "/v2/async/files/delete", json!({"items": hundred}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["total_files"], 100);
    let id = r.body["id"].as_str().unwrap().to_string();

    let got = s.get(&ann, &format!("/v2/async/files/delete/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        (got.body["state"].as_str(), got.body["type"].as_str()),
        (Some("SUBMITTED"), Some("DELETE"))
    );
    assert_eq!(got.body["started_on"], Value::Null);
    assert_error(
        &s.get(&ann, &format!("/v2/async/files/copy/{id}")).await,
        404,
        9008,
    );
    assert_error(
        &s.get(&ann, &format!("/v2/async/files/bogus/{id}")).await,
        404,
        90003,
    );
    assert_error(
        &s.get(&ann, "/v2/async/files/delete/0123456789abcdef").await,
        404,
        9008,
    );
    assert_error(
        &s.get(&bob, &format!("/v2/async/files/delete/{id}")).await,
        404,
        9008,
    );

    // The list: the caller's own jobs, newest first, paged with links.
    let second = s
        .post(
            &ann,
            "/v2/async/files/copy",
            json!({"items": [{"file": "y", "project": "ann/p"}]}),
        )
        .await;
    let r = s.get(&ann, "/v2/async/files?limit=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-total-matching-query"], "2");
    assert_eq!(r.body["items"][0]["id"], second.body["id"]);
    let next = &r.body["links"][0];
    assert_eq!(next["rel"], "next");
    let page2 = s.get(&ann, next["href"].as_str().unwrap()).await;
    assert_eq!(page2.body["items"][0]["id"], id.as_str());
    let mine = s.get(&bob, "/v2/async/files/").await;
    assert_eq!(mine.headers["x-total-matching-query"], "0");
    assert_eq!(mine.body["items"], json!([]));
    assert_error(&s.get(&ann, "/v2/async/files?limit=0").await, 400, 90000);
}
