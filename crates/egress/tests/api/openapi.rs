//! The OpenAPI document: served without a token, and the same as the committed snapshot.

use crate::common::TestServer;
use serde_json::Value;

#[tokio::test]
async fn the_document_is_served_without_a_token_and_matches_the_snapshot() {
    let s = TestServer::start().await;
    let committed: Value =
        serde_json::from_str(include_str!("../../../../docs/openapi.json")).unwrap();
    for token in ["", "not-a-token"] {
        let r = s.get(token, "/v2/openapi.json").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.headers.contains_key("x-ratelimit-remaining"));
        assert_eq!(r.body, committed);
    }
}

#[tokio::test]
async fn the_document_describes_the_api_with_its_token_schemes() {
    let s = TestServer::start().await;
    let doc = s.get("", "/v2/openapi.json").await.body;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["token"]["name"],
        "X-SBG-Auth-Token"
    );
    for (path, method) in [
        ("/v2/files/{id}", "patch"),
        ("/v2/storage/volumes/{owner}/{name}/list", "get"),
        ("/v2/bulk/storage/exports/create", "post"),
        ("/transfer/download/{file_id}", "get"),
        ("/transfer/upload/{upload_id}/{part}", "put"),
        ("/metrics", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let errors: Vec<&Value> = op["responses"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(status, _)| status.starts_with('4'))
            .map(|(_, response)| &response["content"]["application/json"]["schema"]["$ref"])
            .collect();
        assert!(
            errors.contains(&&Value::from("#/components/schemas/Error")),
            "{method} {path}: {errors:?}"
        );
    }
}

/// Asserts that a 2xx body's keys are in the order a `serde_json` map gives them (sorted, at
/// every level): the order they had when the bodies were built as maps, kept byte for byte.
async fn assert_map_bytes(
    s: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = s
        .http
        .request(method.clone(), format!("{}{path}", s.base))
        .header("X-SBG-Auth-Token", token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let raw = resp.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {raw}");
    let parsed: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        raw,
        parsed.to_string(),
        "{method} {path}: keys out of map order"
    );
    parsed
}

#[tokio::test]
async fn bodies_keep_the_bytes_of_the_maps_they_were_built_as() {
    use reqwest::Method;
    use serde_json::json;
    let (s, t, root) = TestServer::with_local_root().await;
    let bob = s.user("bob").await;
    let get = |path: &'static str| (Method::GET, path.to_string(), None);
    let f = s.upload(&t, "ann/p", "a.txt", b"some bytes").await;
    let id = f["id"].as_str().unwrap().to_string();
    let volume = json!({"name": "vol", "access_mode": "RW", "service": {"type": "local", "root": root.path()}});
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        get("/v2/"),
        get("/v2/user"),
        get("/v2/users/bob"),
        get("/v2/rate_limit"),
        get("/v2/projects"),
        get("/v2/projects/ann/p"),
        (
            Method::POST,
            "/v2/projects/ann/p/members".into(),
            Some(json!({"username": "bob", "permissions": {"write": true}})),
        ),
        get("/v2/projects/ann/p/members"),
        (
            Method::PATCH,
            "/v2/projects/ann/p/members/bob/permissions".into(),
            Some(json!({"copy": true})),
        ),
        (Method::GET, "/v2/files?project=ann/p&limit=1".into(), None),
        (Method::GET, format!("/v2/files/{id}"), None),
        (
            Method::PATCH,
            format!("/v2/files/{id}"),
            Some(json!({"metadata": {"b": 1, "a": 2}, "tags": ["t"]})),
        ),
        (Method::GET, format!("/v2/files/{id}/metadata"), None),
        (
            Method::PUT,
            format!("/v2/files/{id}/tags"),
            Some(json!(["x"])),
        ),
        (Method::GET, format!("/v2/files/{id}/download_info"), None),
        (
            Method::POST,
            "/v2/bulk/files/get".into(),
            Some(json!({"file_ids": [id.clone(), "nope"]})),
        ),
        (
            Method::POST,
            "/v2/upload/multipart".into(),
            Some(json!({"project": "ann/p", "name": "u.txt", "size": 3})),
        ),
        (Method::POST, "/v2/storage/volumes".into(), Some(volume)),
        get("/v2/storage/volumes"),
        (
            Method::POST,
            "/v2/storage/volumes/ann/vol/members".into(),
            Some(json!({"username": "bob"})),
        ),
        (
            Method::POST,
            "/v2/storage/exports?copy_only=true".into(),
            Some(
                json!({"source": {"file": id.clone()}, "destination": {"volume": "ann/vol", "location": "out/a.txt"}}),
            ),
        ),
        (
            Method::POST,
            "/v2/bulk/storage/exports/create?copy_only=true".into(),
            Some(
                json!({"items": [{"source": {"file": "nope"}, "destination": {"volume": "ann/vol", "location": "b"}}]}),
            ),
        ),
        get("/v2/storage/exports"),
    ];
    for (method, path, body) in calls {
        assert_map_bytes(&s, &t, method, &path, body).await;
    }
    std::fs::create_dir_all(root.path().join("in")).unwrap();
    std::fs::write(root.path().join("in/o.txt"), b"object").unwrap();
    for (method, path, body) in [
        (
            Method::GET,
            "/v2/storage/volumes/ann/vol/list".to_string(),
            None,
        ),
        (
            Method::GET,
            "/v2/storage/volumes/ann/vol/object?location=in/o.txt".into(),
            None,
        ),
        (
            Method::POST,
            "/v2/storage/imports".into(),
            Some(
                json!({"source": {"volume": "ann/vol", "location": "in/o.txt"}, "destination": {"project": "ann/p"}}),
            ),
        ),
        (
            Method::POST,
            "/v2/bulk/storage/imports/create".into(),
            Some(
                json!({"items": [{"source": {"volume": "ann/nope", "location": "x"}, "destination": {"project": "ann/p"}}]}),
            ),
        ),
        (Method::GET, "/v2/storage/imports".into(), None),
    ] {
        assert_map_bytes(&s, &t, method, &path, body).await;
    }
    // Another user's view of a profile, and a member's view of a file.
    assert_map_bytes(&s, &bob, Method::GET, "/v2/users/ann", None).await;
    assert_map_bytes(&s, &bob, Method::GET, &format!("/v2/files/{id}"), None).await;
}
