//! Files and folders: listing, metadata, copies, deletes, downloads, and invariant 1.

use crate::common::{assert_error, TestServer};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn list_filter_rename_metadata_tags() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    let a = s.upload(&t, "ann/p", "a.txt", b"aaa").await;
    s.upload(&t, "ann/p", "b.txt", b"bbbb").await;
    s.upload(&t, "ann/p", "c.txt", b"c").await;
    assert_eq!(a["size"], 3);
    assert_eq!(a["storage"], json!({"type": "PLATFORM"}));
    assert_eq!(a["checksums"]["md5"], "47bce5c74f589f4867dbd57e9ca9f808");
    assert_eq!(
        a["parent"],
        s.get(&t, "/v2/projects/ann/p").await.body["root_folder"]
    );
    let id = a["id"].as_str().unwrap();

    let page = s
        .get(&t, "/v2/files?project=ann%2Fp&limit=2&fields=_all")
        .await;
    assert_eq!(page.headers["x-total-matching-query"], "3");
    let names = s
        .get(&t, "/v2/files?project=ann/p&name=a.txt&name=c.txt")
        .await;
    assert_eq!(names.headers["x-total-matching-query"], "2");
    assert_error(
        &s.get(&t, "/v2/files?project=ann/p&limit=1000").await,
        400,
        90000,
    );
    assert_error(&s.get(&t, "/v2/files").await, 400, 5029);

    let tags = s
        .call(
            Method::PUT,
            &t,
            &format!("/v2/files/{id}/tags"),
            Some(json!(["red", "blue"])),
        )
        .await;
    assert_eq!(tags.body, json!(["red", "blue"]));
    assert_eq!(
        s.get(&t, "/v2/files?project=ann/p&tag=blue").await.headers["x-total-matching-query"],
        "1"
    );
    let meta = s
        .call(
            Method::PUT,
            &t,
            &format!("/v2/files/{id}/metadata"),
            Some(json!({"sample_id": "s1", "x": "y"})),
        )
        .await;
    assert_eq!(meta.body, json!({"sample_id": "s1", "x": "y"}));
    let merged = s
        .call(
            Method::PATCH,
            &t,
            &format!("/v2/files/{id}/metadata"),
            Some(json!({"x": null, "z": "1"})),
        )
        .await;
    assert_eq!(merged.body, json!({"sample_id": "s1", "z": "1"}));
    let renamed = s
        .call(
            Method::PATCH,
            &t,
            &format!("/v2/files/{id}"),
            Some(json!({"name": "renamed.txt"})),
        )
        .await;
    assert_eq!(renamed.body["name"], "renamed.txt");
    assert_eq!(
        renamed.body["checksums"], a["checksums"],
        "checksums are not user metadata"
    );
    assert_error(
        &s.call(
            Method::PATCH,
            &t,
            &format!("/v2/files/{id}"),
            Some(json!({"name": "a/b"})),
        )
        .await,
        400,
        5024,
    );
    assert_error(
        &s.call(
            Method::PATCH,
            &t,
            &format!("/v2/files/{id}"),
            Some(json!({"name": "b.txt"})),
        )
        .await,
        409,
        5003,
    );
    assert_error(
        &s.get(&t, "/v2/files/000000000000000000000000").await,
        404,
        5002,
    );
}

#[tokio::test]
async fn folders() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    let dir = s
        .post(
            &t,
            "/v2/files",
            json!({"name": "dir", "type": "folder", "project": "ann/p"}),
        )
        .await;
    assert_eq!(dir.body["type"], "folder");
    assert!(dir.body["size"].is_null());
    let dir_id = dir.body["id"].as_str().unwrap();
    assert_error(
        &s.post(
            &t,
            "/v2/files",
            json!({"name": "dir", "type": "folder", "project": "ann/p"}),
        )
        .await,
        409,
        5030,
    );
    assert_error(
        &s.post(
            &t,
            "/v2/files",
            json!({"name": "x", "type": "file", "project": "ann/p"}),
        )
        .await,
        400,
        5012,
    );
    assert_error(
        &s.post(
            &t,
            "/v2/files",
            json!({"name": "x", "type": "folder", "project": "ann/p", "parent": dir_id}),
        )
        .await,
        400,
        5031,
    );
    let sub = s
        .post(
            &t,
            "/v2/files",
            json!({"name": "sub", "type": "folder", "parent": dir_id}),
        )
        .await;
    assert_eq!(sub.body["parent"], dir_id);
    let listing = s.get(&t, &format!("/v2/files/{dir_id}/list")).await;
    assert_eq!(listing.headers["x-total-matching-query"], "1");
    assert_eq!(
        s.get(&t, &format!("/v2/files?parent={dir_id}")).await.body["items"][0]["name"],
        "sub"
    );
    assert_error(
        &s.call(Method::DELETE, &t, &format!("/v2/files/{dir_id}"), None)
            .await,
        400,
        5021,
    );
    let sub_id = sub.body["id"].as_str().unwrap();
    assert_eq!(
        s.call(Method::DELETE, &t, &format!("/v2/files/{sub_id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        s.call(Method::DELETE, &t, &format!("/v2/files/{dir_id}"), None)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn download_supports_range_and_needs_a_valid_signature() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    let body: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let f = s.upload(&t, "ann/p", "data.bin", &body).await;
    let id = f["id"].as_str().unwrap();
    let full = s.download(&t, id, None).await;
    assert_eq!(full.headers()["content-length"], "10000");
    assert_eq!(full.bytes().await.unwrap().as_ref(), &body[..]);
    let part = s.download(&t, id, Some("bytes=100-199")).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(part.headers()["content-length"], "100");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &body[100..200]);
    assert_eq!(s.download(&t, id, Some("bytes=20000-")).await.status(), 416);

    let url = s
        .get(&t, &format!("/v2/files/{id}/download_info"))
        .await
        .body["url"]
        .as_str()
        .unwrap()
        .to_string();
    let forged = url.replace("signature=", "signature=00");
    assert_eq!(s.http.get(forged).send().await.unwrap().status(), 403);
    let (path, _) = url.split_once('?').unwrap();
    assert_eq!(s.http.get(path).send().await.unwrap().status(), 403);
    let other = s.user("bob").await;
    assert_error(
        &s.get(&other, &format!("/v2/files/{id}/download_info"))
            .await,
        404,
        5002,
    );
}

#[tokio::test]
async fn copies_share_bytes_until_the_last_one_goes() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    s.project(&t, "q").await;
    let f = s.upload(&t, "ann/p", "a.txt", b"shared bytes").await;
    let id = f["id"].as_str().unwrap();
    let copy = s
        .post(
            &t,
            &format!("/v2/files/{id}/actions/copy"),
            json!({"project": "ann/q"}),
        )
        .await;
    assert_eq!(copy.status, 200, "{:?}", copy.body);
    assert_eq!(
        (copy.body["project"].as_str(), copy.body["name"].as_str()),
        (Some("ann/q"), Some("a.txt"))
    );
    assert_eq!(copy.body["checksums"], f["checksums"]);
    let again = s
        .post(
            &t,
            &format!("/v2/files/{id}/actions/copy"),
            json!({"project": "ann/q"}),
        )
        .await;
    assert_eq!(
        again.body["name"], "_1_a.txt",
        "a clashing copy is renamed as SBG does"
    );
    let blobs = |s: &TestServer| {
        s.stored_objects()
            .into_iter()
            .filter(|k| k.starts_with("blobs/"))
            .count()
    };
    assert_eq!(blobs(&s), 1, "copies share one stored object");

    assert_eq!(
        s.call(Method::DELETE, &t, &format!("/v2/files/{id}"), None)
            .await
            .status,
        204
    );
    let copy_id = copy.body["id"].as_str().unwrap();
    s.sweep().await;
    assert_eq!(blobs(&s), 1, "the copies still hold the bytes");
    let bytes = s.download(&t, copy_id, None).await.bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), b"shared bytes");

    let bulk = s
        .post(
            &t,
            "/v2/bulk/files/delete",
            json!({"file_ids": [copy_id, again.body["id"], "missing"]}),
        )
        .await;
    assert_eq!(bulk.status, 200);
    assert!(bulk.body["items"][0]["resource"].is_object());
    assert!(bulk.body["items"][1]["resource"].is_object());
    assert_eq!(bulk.body["items"][2]["error"]["code"], 5002);
    s.sweep().await;
    assert_eq!(
        blobs(&s),
        0,
        "the sweeper freed the bytes after the last reference went"
    );
}

#[tokio::test]
async fn bulk_get_keeps_order_and_limits() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    let a = s.upload(&t, "ann/p", "a", b"1").await;
    let r = s
        .post(
            &t,
            "/v2/bulk/files/get",
            json!({"file_ids": ["nope", a["id"]]}),
        )
        .await;
    assert_eq!(r.body["items"][0]["error"]["code"], 5002);
    assert_eq!(r.body["items"][1]["resource"]["name"], "a");
    let too_many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    assert_error(
        &s.post(&t, "/v2/bulk/files/get", json!({"file_ids": too_many}))
            .await,
        400,
        90000,
    );
    assert_error(
        &s.post(&t, "/v2/bulk/files/get", json!({"file_ids": []}))
            .await,
        400,
        90000,
    );
}

#[tokio::test]
async fn public_projects_are_readable_and_copyable_by_all() {
    let s = TestServer::start().await;
    let ann = s.user("ann").await;
    let bob = s.user("bob").await;
    s.project(&ann, "reference").await;
    s.project(&bob, "mine").await;
    let f = s
        .upload(&ann, "ann/reference", "genome.fa", b">chr1\nACGT\n")
        .await;
    let id = f["id"].as_str().unwrap();
    assert_error(&s.get(&bob, &format!("/v2/files/{id}")).await, 404, 5002);
    let store = &s.running.state.store;
    let mut p = store.get_project("ann/reference").await.unwrap().unwrap();
    p.is_public = true;
    store.update_project(&p).await.unwrap();
    assert_eq!(s.get(&bob, &format!("/v2/files/{id}")).await.status, 200);
    let copy = s
        .post(
            &bob,
            &format!("/v2/files/{id}/actions/copy"),
            json!({"project": "bob/mine"}),
        )
        .await;
    assert_eq!(copy.status, 200);
    let copied = store
        .get_file(copy.body["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(copied.is_public, "copies of public files stay public");
    assert_error(
        &s.call(Method::DELETE, &bob, &format!("/v2/files/{id}"), None)
            .await,
        403,
        5001,
    );
}
