//! Two `egress serve` nodes sharing one Postgres, one platform storage and one server key:
//! either node serves the API, both run jobs, and every job runs exactly once.

use crate::common::{bulk_values, TestServer};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn two_nodes_on_postgres_share_the_work() {
    let Some(url) = egress_store::testdb::postgres_url().await else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let key = shared.path().join("server.key");
    std::fs::write(&key, "7".repeat(64)).unwrap();
    let volume_root = shared.path().join("volume");
    std::fs::create_dir_all(&volume_root).unwrap();
    let node = |url: String, platform: std::path::PathBuf, key: std::path::PathBuf| {
        let volume_root = volume_root.clone();
        TestServer::start_with(move |c| {
            c.store.database_url = Some(url);
            c.platform_storage = Some(platform.display().to_string());
            c.secret_key_file = Some(key);
            c.volume_policy.local_roots = vec![volume_root];
            c.engine.poll = Duration::from_millis(20);
            c.engine.workers = 2;
        })
    };
    let platform = shared.path().join("platform");
    let a = node(url.clone(), platform.clone(), key.clone()).await;
    let b = node(url, platform, key).await;

    let t = a.admin("ann").await;
    a.project(&t, "p").await;
    let v = b.post(&t, "/v2/storage/volumes", json!({"name": "out", "access_mode": "RW", "service": {"type": "local", "root": volume_root}})).await;
    assert_eq!(v.status, 200, "node b sees node a's user: {:?}", v.body);
    let mut items = Vec::new();
    for i in 0..20 {
        let f = a
            .upload(
                &t,
                "ann/p",
                &format!("f{i}.txt"),
                format!("bytes {i}").as_bytes(),
            )
            .await;
        items.push(json!({"source": {"file": f["id"]}, "destination": {"volume": "ann/out", "location": format!("f{i}.txt")}}));
    }
    let r = b
        .post(
            &t,
            "/v2/bulk/storage/exports/create",
            json!({"items": items}),
        )
        .await;
    let ids = bulk_values(&r.body, "/resource/id");

    let done = a.finished_exports(&t, &ids).await;
    for (i, job) in done.iter().enumerate() {
        assert_eq!(job["state"], "COMPLETED", "{job:?}");
        assert_eq!(
            std::fs::read(volume_root.join(format!("f{i}.txt"))).unwrap(),
            format!("bytes {i}").as_bytes()
        );
    }
    // Each job was claimed once: a second claim would have raised its attempt.
    for id in &ids {
        let job = a
            .running
            .state
            .store
            .get_export(id.as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.attempt, 1, "no job ran twice");
    }
}
