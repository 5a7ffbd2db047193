//! Export jobs end to end on a local volume (S3 volumes are covered by the client tests
//! against moto): submission, validation, the engine, the alias flip and freed bytes.

use crate::common::{assert_error, bulk_values, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

/// Ann, a platform administrator (only they make local volumes), with a project and a local
/// volume in a declared root.
async fn server() -> (TestServer, String, tempfile::TempDir) {
    let (s, t, root) = TestServer::with_local_root().await;
    let v = s.post(&t, "/v2/storage/volumes", json!({"name": "out", "access_mode": "RW", "service": {"type": "local", "root": root.path(), "prefix": "pre"}})).await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    (s, t, root)
}

fn item(file: &Value, location: &str, overwrite: bool) -> Value {
    json!({"source": {"file": file["id"]}, "destination": {"volume": "ann/out", "location": location}, "overwrite": overwrite, "properties": {}})
}

#[tokio::test]
async fn move_flips_the_file_to_an_alias_and_frees_platform_bytes() {
    let (s, t, root) = server().await;
    let f = s.upload(&t, "ann/p", "a.txt", b"exported bytes").await;
    let r = s
        .post(
            &t,
            "/v2/bulk/storage/exports/create?copy_only=False",
            json!({"items": [item(&f, "dir/a.txt", false)]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let job = &r.body["items"][0]["resource"];
    assert_eq!(job["state"], "PENDING");
    assert_eq!(job["properties"]["sse_algorithm"], "AES256");
    let done = s.finished_exports(&t, &[job["id"].as_str().unwrap()]).await;
    assert_eq!(done[0]["state"], "COMPLETED", "{:?}", done[0]);
    assert_eq!(done[0]["progress"]["bytes_copied"], 14);
    let result = &done[0]["result"];
    assert_eq!(
        result["storage"],
        json!({"type": "VOLUME", "volume": "ann/out", "location": "dir/a.txt"})
    );
    assert_eq!(
        result["checksums"], f["checksums"],
        "an alias keeps its checksums"
    );
    assert_eq!(
        std::fs::read(root.path().join("pre/dir/a.txt")).unwrap(),
        b"exported bytes"
    );

    s.sweep().await;
    assert!(
        s.stored_objects().iter().all(|k| !k.starts_with("blobs/")),
        "the platform copy was freed"
    );
    let id = f["id"].as_str().unwrap();
    assert_eq!(
        s.download(&t, id, None)
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"exported bytes",
        "the alias reads the volume object"
    );
    let again = s
        .post(
            &t,
            "/v2/bulk/storage/exports/create",
            json!({"items": [item(&f, "b.txt", false)]}),
        )
        .await;
    assert_eq!(
        again.body["items"][0]["error"]["code"], 9006,
        "an alias cannot be exported"
    );

    let v = s
        .call(
            Method::PATCH,
            &t,
            "/v2/storage/volumes/ann/out",
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(v.status, 200);
    assert_error(
        &s.call(Method::DELETE, &t, "/v2/storage/volumes/ann/out", None)
            .await,
        409,
        90007,
    );
    assert_eq!(
        s.call(Method::DELETE, &t, &format!("/v2/files/{id}"), None)
            .await
            .status,
        204
    );
    assert!(
        root.path().join("pre/dir/a.txt").exists(),
        "deleting an alias keeps the object"
    );
    assert_eq!(
        s.call(Method::DELETE, &t, "/v2/storage/volumes/ann/out", None)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn copy_only_keeps_the_source_and_same_destination_runs_in_order() {
    let (s, t, root) = server().await;
    let first = s.upload(&t, "ann/p", "one.vcf", b"first").await;
    let second = s.upload(&t, "ann/p", "two.vcf", b"second").await;
    // The seed's example: two items aimed at the same location.
    let r = s.post(&t, "/v2/bulk/storage/exports/create", json!({"items": [item(&first, "output.vcf", true), item(&second, "output.vcf", false)]})).await;
    let ids: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["resource"]["id"].as_str().unwrap())
        .collect();
    let done = s.finished_exports(&t, &ids).await;
    assert_eq!(done[0]["state"], "COMPLETED");
    assert_eq!(done[1]["state"], "FAILED");
    assert_eq!(done[1]["error"]["code"], 9107);
    assert_eq!(done[1]["error"]["status"], 409);
    assert_eq!(
        std::fs::read(root.path().join("pre/output.vcf")).unwrap(),
        b"first"
    );
    let untouched = s
        .get(&t, &format!("/v2/files/{}", second["id"].as_str().unwrap()))
        .await;
    assert_eq!(untouched.body["storage"]["type"], "PLATFORM");

    let copy = s
        .post(
            &t,
            "/v2/storage/exports?copy_only=True",
            item(&second, "copy.vcf", false),
        )
        .await;
    assert_eq!(copy.status, 200, "{:?}", copy.body);
    assert_eq!(copy.body["copy_only"], true);
    let done = s
        .finished_exports(&t, &[copy.body["id"].as_str().unwrap()])
        .await;
    assert_eq!(done[0]["state"], "COMPLETED");
    assert_eq!(
        done[0]["result"]["storage"]["type"], "PLATFORM",
        "copy_only leaves the file on the platform"
    );
    let twice = s
        .post(
            &t,
            "/v2/storage/exports?copy_only=true",
            item(&second, "copy2.vcf", false),
        )
        .await;
    assert_eq!(twice.status, 200, "a copied file can be exported again");

    let listed = s
        .get(
            &t,
            "/v2/storage/exports?volume=ann%2Fout&state=COMPLETED&state=FAILED",
        )
        .await;
    assert_eq!(listed.headers["x-total-matching-query"], "3");
    assert_error(&s.get(&t, "/v2/storage/exports/nope").await, 404, 9008);
    let other = s.user("bob").await;
    assert_error(
        &s.get(&other, &format!("/v2/storage/exports/{}", ids[0]))
            .await,
        404,
        9008,
    );
}

#[tokio::test]
async fn validation_errors_keep_request_order() {
    let (s, t, root) = server().await;
    let f = s.upload(&t, "ann/p", "f.txt", b"x").await;
    let g = s.upload(&t, "ann/p", "g.txt", b"y").await;
    let folder = s
        .post(
            &t,
            "/v2/files",
            json!({"name": "dir", "type": "folder", "project": "ann/p"}),
        )
        .await
        .body;
    let mut wrong_volume = item(&g, "v.txt", false);
    wrong_volume["destination"]["volume"] = json!("ann/nope");
    let mut bad_props = item(&g, "p.txt", false);
    bad_props["properties"] = json!({"sse_algorithm": "rot13"});
    let items = json!([
        item(&json!({"id": "missing"}), "a", false),
        item(&folder, "b", false),
        item(&f, "", false),
        item(&f, "/abs", false),
        item(&f, "a/../b", false),
        item(&f, &"k".repeat(1021), false),
        wrong_volume,
        bad_props,
        item(&f, "ok.txt", false),
        item(&f, "twice.txt", false),
    ]);
    let r = s
        .post(
            &t,
            "/v2/bulk/storage/exports/create",
            json!({"items": items}),
        )
        .await;
    let codes = bulk_values(&r.body, "/error/code");
    assert_eq!(
        codes,
        [
            json!(5002),
            json!(9006),
            json!(9011),
            json!(9011),
            json!(9011),
            json!(9011),
            json!(9007),
            json!(9023),
            Value::Null,
            json!(90007)
        ]
    );
    assert!(r.body["items"][8]["resource"]["id"].is_string());
    let pending = r.body["items"][8]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let busy = s
        .post(&t, "/v2/storage/exports", item(&f, "third.txt", false))
        .await;
    assert!(
        busy.status == 409
            || s.get(&t, &format!("/v2/storage/exports/{pending}"))
                .await
                .body["state"]
                == "COMPLETED"
    );

    let too_many: Vec<Value> = (0..101).map(|_| item(&g, "x", false)).collect();
    assert_error(
        &s.post(
            &t,
            "/v2/bulk/storage/exports/create",
            json!({"items": too_many}),
        )
        .await,
        400,
        90000,
    );
    assert_error(
        &s.post(&t, "/v2/bulk/storage/exports/create", json!({"items": []}))
            .await,
        400,
        90000,
    );
    assert_error(
        &s.post(
            &t,
            "/v2/bulk/storage/exports/create",
            json!({"items": [{"source": {"file": "x"}}]}),
        )
        .await,
        400,
        90009,
    );
    let ro_root = root.path().join("ro-test");
    std::fs::create_dir_all(&ro_root).unwrap();
    let ro = s.post(&t, "/v2/storage/volumes", json!({"name": "readonly", "access_mode": "RO", "service": {"type": "local", "root": ro_root}})).await;
    assert_eq!(ro.status, 200);
    let mut to_ro = item(&g, "x", false);
    to_ro["destination"]["volume"] = json!("ann/readonly");
    assert_error(&s.post(&t, "/v2/storage/exports", to_ro).await, 400, 9026);
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response() {
    let (s, t, _root) = server().await;
    let f = s.upload(&t, "ann/p", "f.txt", b"x").await;
    let body = json!({"items": [item(&f, "idem.txt", false)]});
    let send = || {
        s.http
            .post(format!("{}/v2/bulk/storage/exports/create", s.base))
            .header("X-SBG-Auth-Token", &t)
            .header("Idempotency-Key", "retry-1")
            .json(&body)
            .send()
    };
    let a: Value = send().await.unwrap().json().await.unwrap();
    let b: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(
        a["items"][0]["resource"]["id"],
        b["items"][0]["resource"]["id"]
    );
    let listed = s.get(&t, "/v2/storage/exports").await;
    assert_eq!(
        listed.headers["x-total-matching-query"], "1",
        "the retry created no new job"
    );
}

#[tokio::test]
async fn metrics_report_jobs_and_platform_bytes() {
    let (s, t, _root) = server().await;
    let f = s.upload(&t, "ann/p", "f.txt", b"12345").await;
    s.upload(&t, "ann/p", "kept.txt", b"123").await;
    let r = s
        .post(&t, "/v2/storage/exports", item(&f, "m.txt", false))
        .await;
    s.finished_exports(&t, &[r.body["id"].as_str().unwrap()])
        .await;
    let admin = s.admin("root").await;
    let page = s.get(&admin, "/metrics").await;
    assert_eq!(page.status, 200);
    let text = page.body.as_str().unwrap();
    assert!(
        text.contains("egress_export_jobs{state=\"COMPLETED\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("egress_platform_bytes{project=\"ann/p\"} 3"),
        "{text}"
    );
    assert!(text.contains("egress_export_bytes_copied_total"), "{text}");
    assert!(
        text.contains("egress_platform_bytes_freed_by_exports_total"),
        "{text}"
    );
    let not_admin = s.user("bob").await;
    assert_error(&s.get(&not_admin, "/metrics").await, 403, 90002);
}
