//! Import jobs end to end on a local volume (S3 volumes are covered by the client tests).

use crate::common::{assert_error, bulk_values, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

/// Ann, a platform administrator (only they make local volumes), with a project and a local
/// volume in a declared root.
async fn server() -> (TestServer, String, tempfile::TempDir) {
    let (s, t, root) = TestServer::with_local_root().await;
    for (key, body) in [
        ("in/a.txt", "A"),
        ("in/sub/b.txt", "BB"),
        ("in/sub/deep/c.txt", "CCC"),
        ("solo.vcf", "VCF"),
    ] {
        let path = root.path().join("pre").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let v = s.post(&t, "/v2/storage/volumes", json!({"name": "src", "access_mode": "RW", "service": {"type": "local", "root": root.path(), "prefix": "pre"}})).await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    (s, t, root)
}

fn names(listing: &Value) -> Vec<String> {
    let mut n: Vec<String> = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn object_import_makes_an_alias_and_follows_the_clash_rules() {
    let (s, t, _root) = server().await;
    let src = json!({"volume": "ann/src", "location": "solo.vcf"});
    let done = s
        .import_finished(
            &t,
            json!({"source": src, "destination": {"project": "ann/p"}}),
        )
        .await;
    assert_eq!(done["state"], "COMPLETED", "{done:?}");
    let alias = &done["result"];
    assert_eq!(alias["name"], "solo.vcf");
    assert_eq!(alias["size"], 3);
    assert_eq!(
        alias["storage"],
        json!({"type": "VOLUME", "volume": "ann/src", "location": "solo.vcf"})
    );
    let bytes = s
        .download(&t, alias["id"].as_str().unwrap(), None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), b"VCF");
    assert!(
        s.stored_objects().is_empty(),
        "no bytes were copied onto the platform"
    );

    let clash = s
        .import_finished(
            &t,
            json!({"source": src, "destination": {"project": "ann/p"}}),
        )
        .await;
    assert_eq!(
        (clash["state"].as_str(), clash["error"]["code"].as_u64()),
        (Some("FAILED"), Some(9108))
    );
    let renamed = s
        .import_finished(
            &t,
            json!({"source": src, "destination": {"project": "ann/p"}, "autorename": true}),
        )
        .await;
    assert_eq!(renamed["result"]["name"], "_1_solo.vcf");

    let platform = s.upload(&t, "ann/p", "mine.vcf", b"platform bytes").await;
    let replaced = s.import_finished(&t, json!({"source": src, "destination": {"project": "ann/p", "name": "mine.vcf"}, "overwrite": true})).await;
    assert_eq!(replaced["state"], "COMPLETED");
    assert_error(
        &s.get(
            &t,
            &format!("/v2/files/{}", platform["id"].as_str().unwrap()),
        )
        .await,
        404,
        5002,
    );
    s.sweep().await;
    assert!(
        s.stored_objects().iter().all(|k| !k.starts_with("blobs/")),
        "the replaced file's bytes were freed"
    );

    let missing = s.import_finished(&t, json!({"source": {"volume": "ann/src", "location": "nope.txt"}, "destination": {"project": "ann/p"}})).await;
    assert_eq!(missing["error"]["code"], 9105);
    let copy = s
        .post(
            &t,
            &format!("/v2/files/{}/actions/copy", alias["id"].as_str().unwrap()),
            json!({"project": "ann/p", "name": "copied.vcf"}),
        )
        .await;
    assert_eq!(
        copy.body["storage"]["type"], "VOLUME",
        "a copy of an alias is an alias"
    );
}

#[tokio::test]
async fn folder_import_keeps_or_flattens_the_structure() {
    let (s, t, _root) = server().await;
    let kept = s.import_finished(&t, json!({"source": {"volume": "ann/src", "location": "in/"}, "destination": {"project": "ann/p"}})).await;
    assert_eq!(kept["state"], "COMPLETED", "{kept:?}");
    assert_eq!(kept["progress"]["objects_imported"], 3);
    let top = &kept["result"];
    assert_eq!(
        (top["name"].as_str(), top["type"].as_str()),
        (Some("in"), Some("folder"))
    );
    let level1 = s
        .get(
            &t,
            &format!("/v2/files?parent={}", top["id"].as_str().unwrap()),
        )
        .await
        .body;
    assert_eq!(names(&level1), ["a.txt", "sub"]);
    let sub = level1["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "sub")
        .unwrap();
    let level2 = s
        .get(
            &t,
            &format!("/v2/files?parent={}", sub["id"].as_str().unwrap()),
        )
        .await
        .body;
    assert_eq!(names(&level2), ["b.txt", "deep"]);
    let b = level2["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "b.txt")
        .unwrap();
    assert_eq!(b["storage"]["location"], "in/sub/b.txt");

    let dir = s
        .post(
            &t,
            "/v2/files",
            json!({"name": "flat", "type": "folder", "project": "ann/p"}),
        )
        .await
        .body;
    let flat = s.import_finished(&t, json!({"source": {"volume": "ann/src", "location": "in/"}, "destination": {"parent": dir["id"]}, "preserve_folder_structure": false})).await;
    assert_eq!(flat["result"]["id"], dir["id"]);
    let listing = s
        .get(
            &t,
            &format!("/v2/files?parent={}", dir["id"].as_str().unwrap()),
        )
        .await
        .body;
    assert_eq!(names(&listing), ["a.txt", "b.txt", "c.txt"]);
}

#[tokio::test]
async fn import_validation() {
    let (s, t, _root) = server().await;
    let bob = s.user("bob").await;
    let items = json!([
        {"source": {"volume": "ann/none", "location": "x"}, "destination": {"project": "ann/p"}},
        {"source": {"volume": "ann/src", "location": "/abs"}, "destination": {"project": "ann/p"}},
        {"source": {"volume": "ann/src", "location": "x"}, "destination": {"project": "ann/p", "parent": "f"}},
        {"source": {"volume": "ann/src", "location": "x"}, "destination": {}},
        {"source": {"volume": "ann/src", "location": "x"}, "destination": {"project": "ann/p", "name": "a/b"}},
        {"source": {"volume": "ann/src", "location": "solo.vcf"}, "destination": {"project": "ann/p"}},
    ]);
    let r = s
        .post(
            &t,
            "/v2/bulk/storage/imports/create",
            json!({"items": items}),
        )
        .await;
    let codes = bulk_values(&r.body, "/error/code");
    assert_eq!(
        codes,
        [
            json!(9007),
            json!(9011),
            json!(5031),
            json!(5029),
            json!(5024),
            Value::Null
        ]
    );
    let id = r.body["items"][5]["resource"]["id"].as_str().unwrap();
    let got = s
        .post(
            &t,
            "/v2/bulk/storage/imports/get",
            json!({"import_ids": [id, "nope"]}),
        )
        .await;
    assert_eq!(got.body["items"][1]["error"]["code"], 9008);
    assert_error(&s.post(&bob, "/v2/storage/imports", json!({"source": {"volume": "ann/src", "location": "x"}, "destination": {"project": "bob/x"}})).await, 404, 9007);
    let listed = s.get(&t, "/v2/storage/imports?project=ann%2Fp").await;
    assert_eq!(listed.headers["x-total-matching-query"], "1");
    // The import made above is still pending: only a forced deactivation goes through.
    let off = s
        .call(
            Method::PATCH,
            &t,
            "/v2/storage/volumes/ann/src?force=true",
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(off.status, 200, "{:?}", off.body);
    assert_error(&s.post(&t, "/v2/storage/imports", json!({"source": {"volume": "ann/src", "location": "x"}, "destination": {"project": "ann/p"}})).await, 403, 9103);
}
