//! Azure Blob volumes against Azurite: the server holds the emulator account's shared key
//! (`--azure-shared-key`), the volume body is the docs' (storage account, container, Entra ID
//! application). Browse, imports of a multi-MB and a small blob read back byte for byte, and the
//! refusals.

use crate::common::{assert_error, TestServer};
use crate::emulators;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;

const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public, in Microsoft's documentation).
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A Shared Key signed PUT to Azurite (create a container, or upload a block blob).
async fn put(http: &reqwest::Client, endpoint: &str, path: &str, query: &str, body: Vec<u8>) {
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let blob = query.is_empty();
    let length = if body.is_empty() {
        String::new()
    } else {
        body.len().to_string()
    };
    let mut headers = vec![];
    if blob {
        headers.push(("x-ms-blob-type", "BlockBlob".to_string()));
    }
    headers.push(("x-ms-date", date.clone()));
    headers.push(("x-ms-version", "2021-08-06".to_string()));
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let mut resource = format!("/{ACCOUNT}/{ACCOUNT}/{path}");
    if !query.is_empty() {
        let (k, v) = query.split_once('=').unwrap();
        resource.push_str(&format!("\n{k}:{v}"));
    }
    let to_sign = format!("PUT\n\n\n{length}\n\n\n\n\n\n\n\n\n{canonical_headers}{resource}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&STANDARD.decode(KEY).unwrap()).unwrap();
    mac.update(to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    let url = if query.is_empty() {
        format!("{endpoint}/{ACCOUNT}/{path}")
    } else {
        format!("{endpoint}/{ACCOUNT}/{path}?{query}")
    };
    let mut request = http
        .put(url)
        .header("Authorization", format!("SharedKey {ACCOUNT}:{signature}"))
        .body(body);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let r = request.send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {:?}", r.text().await);
}

#[tokio::test]
async fn azure_volume_browse_and_import_byte_for_byte() {
    let Some(azurite) = emulators::azurite() else {
        return;
    };
    let endpoint = azurite.endpoint.clone();
    let s = TestServer::start_with(|c| {
        c.volume_policy.allow_endpoints = vec![endpoint.clone()];
        c.volume_policy.azure_shared_keys = vec![format!("{ACCOUNT}={KEY}")];
        c.engine.poll = std::time::Duration::from_millis(50);
    })
    .await;
    let http = reqwest::Client::new();
    put(&http, &endpoint, "samples", "restype=container", vec![]).await;
    let big: Vec<u8> = (0..4 * 1024 * 1024 + 5)
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    put(&http, &endpoint, "samples/run1/big.bin", "", big.clone()).await;
    put(
        &http,
        &endpoint,
        "samples/run1/small.txt",
        "",
        b"tiny".to_vec(),
    )
    .await;
    put(
        &http,
        &endpoint,
        "samples/run1/sub/x.txt",
        "",
        b"x".to_vec(),
    )
    .await;

    let t = s.user("ada").await;
    s.project(&t, "p").await;
    // The body from the docs and the R client's create_azure.
    let body = |name: &str, mode: &str| {
        json!({"name": name, "access_mode": mode, "description": "from the docs",
            "service": {"type": "azure", "storage_account": ACCOUNT, "container": "samples",
                "endpoint": endpoint, "prefix": "run1",
                "credentials": {"tenant_id": "tenant-1", "client_id": "client-1", "client_secret": "s3cret-value"},
                "properties": {"resource_id": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/devstoreaccount1"}}})
    };
    let v = s.post(&t, "/v2/storage/volumes", body("avol", "RO")).await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    assert_eq!(v.body["service"]["type"], "azure");
    assert_eq!(v.body["service"]["storage_account"], ACCOUNT);
    assert_eq!(
        v.body["service"]["credentials"],
        json!({"client_id": "client-1", "tenant_id": "tenant-1"})
    );
    let shown = s.get(&t, "/v2/storage/volumes/ada/avol").await;
    assert!(!shown.body.to_string().contains("s3cret-value"));

    let (locations, prefixes) = s.volume_root(&t, "ada/avol").await;
    assert_eq!(locations, ["big.bin", "small.txt"]);
    assert_eq!(prefixes.first().map(String::as_str), Some("sub/"));

    for (location, want) in [("big.bin", big.clone()), ("small.txt", b"tiny".to_vec())] {
        s.import_and_read_back(&t, "ada/avol", "ada/p", location, &want, 1..=2)
            .await;
    }
    let folder = s
        .import_finished(
            &t,
            json!({"source": {"volume": "ada/avol", "location": "sub/"},
            "destination": {"project": "ada/p"}}),
        )
        .await;
    assert_eq!(folder["state"], "COMPLETED", "{folder:?}");

    // Exports to Azure are refused, as SBG refuses them.
    let f = s.upload(&t, "ada/p", "out.txt", b"out").await;
    let r = s
        .post(
            &t,
            "/v2/storage/exports",
            json!({"source": {"file": f["id"]}, "destination": {"volume": "ada/avol", "location": "o.txt"}}),
        )
        .await;
    assert_error(&r, 400, 9027);
    // RW, a missing container, an account not in the allowlist's reach, bad bodies.
    assert_error(
        &s.post(&t, "/v2/storage/volumes", body("arw", "RW")).await,
        400,
        9057,
    );
    let mut gone = body("agone", "RO");
    gone["service"]["container"] = json!("nothere");
    assert_error(&s.post(&t, "/v2/storage/volumes", gone).await, 403, 9001);
    let mut cloud = body("acloud", "RO");
    cloud["service"].as_object_mut().unwrap().remove("endpoint");
    assert_error(&s.post(&t, "/v2/storage/volumes", cloud).await, 400, 9017);
    for (key, value) in [
        ("storage_account", json!("Not_Valid")),
        ("container", json!(null)),
        ("credentials", json!({"tenant_id": "t", "client_id": "c"})),
        ("properties", json!({"sse_algorithm": "AES256"})),
    ] {
        let mut bad = body("abad", "RO");
        bad["service"][key] = value;
        assert_error(&s.post(&t, "/v2/storage/volumes", bad).await, 400, 9017);
    }
}
