//! GCS volumes against gcp-storage-emulator: create (probe), browse, object info, imports of a
//! multi-MB and a small object read back byte for byte, a folder import, and the refusals.

use crate::common::{assert_error, TestServer};
use crate::emulators;
use serde_json::json;

async fn put(http: &reqwest::Client, endpoint: &str, bucket: &str, key: &str, data: Vec<u8>) {
    let r = http
        .post(format!("{endpoint}/upload/storage/v1/b/{bucket}/o"))
        .query(&[("uploadType", "media"), ("name", key)])
        .body(data)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

#[tokio::test]
async fn gcs_volume_browse_and_import_byte_for_byte() {
    let Some(emulator) = emulators::gcs() else {
        return;
    };
    let endpoint = emulator.endpoint.clone();
    let s = TestServer::start_with(|c| {
        c.volume_policy.allow_endpoints = vec![endpoint.clone()];
        c.volume_policy.gcs_default_endpoint = endpoint.clone();
        c.engine.poll = std::time::Duration::from_millis(50);
    })
    .await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{endpoint}/storage/v1/b"))
        .json(&json!({"name": "reads"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let big: Vec<u8> = (0..5 * 1024 * 1024 + 77)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    put(&http, &endpoint, "reads", "data/big.bin", big.clone()).await;
    put(
        &http,
        &endpoint,
        "reads",
        "data/small.txt",
        b"small".to_vec(),
    )
    .await;
    put(&http, &endpoint, "reads", "data/sub/x.txt", b"x".to_vec()).await;

    let t = s.user("gina").await;
    s.project(&t, "p").await;
    let key = emulators::service_account_key();
    let body = |name: &str, key: &str, mode: &str| {
        json!({"name": name, "access_mode": mode, "service": {"type": "GCS", "bucket": "reads",
            "prefix": "data", "credentials": {"client_email": "svc@p.iam.gserviceaccount.com", "private_key": key}}})
    };
    let v = s
        .post(&t, "/v2/storage/volumes", body("gvol", &key, "RO"))
        .await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    assert_eq!(
        v.body["service"]["credentials"],
        json!({"client_email": "svc@p.iam.gserviceaccount.com"})
    );
    assert!(!v.body.to_string().contains("PRIVATE KEY"));

    let (locations, prefixes) = s.volume_root(&t, "gina/gvol").await;
    assert_eq!(locations, ["big.bin", "small.txt"]);
    assert_eq!(prefixes.first().map(String::as_str), Some("sub/"));
    let info = s
        .get(&t, "/v2/storage/volumes/gina/gvol/object?location=big.bin")
        .await;
    assert_eq!(info.body["metadata"]["size"], big.len());
    let missing = s
        .get(&t, "/v2/storage/volumes/gina/gvol/object?location=nope")
        .await;
    assert_error(&missing, 404, 9105);

    for (location, want) in [("big.bin", big.clone()), ("small.txt", b"small".to_vec())] {
        let file = s
            .import_and_read_back(&t, "gina/gvol", "gina/p", location, &want, 1..=3)
            .await;
        let md5 = s.get(&t, &format!("/v2/files/{file}")).await.body["checksums"]["md5"].clone();
        assert_eq!(
            md5,
            format!("{:x}", <md5::Md5 as md5::Digest>::digest(&want))
        );
    }
    let folder = s
        .import_finished(
            &t,
            json!({"source": {"volume": "gina/gvol", "location": "sub/"},
            "destination": {"project": "gina/p"}}),
        )
        .await;
    assert_eq!(folder["state"], "COMPLETED", "{folder:?}");

    let gone = s
        .import_finished(
            &t,
            json!({"source": {"volume": "gina/gvol", "location": "none.txt"},
        "destination": {"project": "gina/p"}}),
        )
        .await;
    assert_eq!(
        (gone["state"].as_str(), gone["error"]["code"].as_u64()),
        (Some("FAILED"), Some(9105))
    );

    // Refusals: RW, a key Egress cannot sign with, a missing bucket, a far endpoint.
    assert_error(
        &s.post(&t, "/v2/storage/volumes", body("grw", &key, "RW"))
            .await,
        400,
        9057,
    );
    let bad_key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
    assert_error(
        &s.post(&t, "/v2/storage/volumes", body("gbad", bad_key, "RO"))
            .await,
        400,
        9025,
    );
    let mut nobucket = body("gnone", &key, "RO");
    nobucket["service"]["bucket"] = json!("no-such-bucket");
    assert_error(
        &s.post(&t, "/v2/storage/volumes", nobucket).await,
        403,
        9001,
    );
    let mut far = body("gfar", &key, "RO");
    far["service"]["root_url"] = json!("https://www.googleapis.com");
    assert_error(&s.post(&t, "/v2/storage/volumes", far).await, 400, 9017);
}
