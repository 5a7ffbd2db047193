//! Volume creation defaults.

use crate::common::{assert_error, TestServer};
use serde_json::json;

#[tokio::test]
async fn access_mode_defaults_to_rw() {
    let (s, t, root) = TestServer::with_local_root().await;
    let service = json!({"type": "local", "root": root.path()});
    let v = s
        .post(
            &t,
            "/v2/storage/volumes",
            json!({"name": "plain", "service": service}),
        )
        .await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    assert_eq!(v.body["access_mode"], "RW");
    let got = s.get(&t, "/v2/storage/volumes/ann/plain").await;
    assert_eq!(got.body["access_mode"], "RW");
    let null = s
        .post(
            &t,
            "/v2/storage/volumes",
            json!({"name": "nulled", "access_mode": null, "service": service}),
        )
        .await;
    assert_eq!(null.body["access_mode"], "RW", "{:?}", null.body);
    let ro = s
        .post(
            &t,
            "/v2/storage/volumes",
            json!({"name": "read_only", "access_mode": "ro", "service": service}),
        )
        .await;
    assert_eq!(ro.body["access_mode"], "RO", "{:?}", ro.body);
    for bad in [json!("RX"), json!(""), json!(1), json!(["RW"])] {
        let r = s
            .post(
                &t,
                "/v2/storage/volumes",
                json!({"name": "bad", "access_mode": bad, "service": service}),
            )
            .await;
        assert_error(&r, 400, 9015);
    }
}
