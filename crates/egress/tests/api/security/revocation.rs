//! Rights hold at the moment of effect. Jobs are submitted to a server whose engine runs no
//! jobs, so they wait in the queue; rights change; then a restart runs them. Uploads re-check
//! write access when they complete. A volume is not deactivated, made read-only or deleted under
//! unfinished jobs, unless a deactivation is forced, which fails them.

use crate::common::{assert_error, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

struct Setup {
    s: TestServer,
    /// Platform administrator: owns project `root/p` and local volume `root/vol`.
    root: String,
    /// Member of both with every right, until the test takes some away.
    bob: String,
    volume_dir: PathBuf,
    /// The folder declared for local volumes (kept alive by `_keep`).
    declared: PathBuf,
    _keep: tempfile::TempDir,
}

fn tune(c: &mut egress::server::Config, declared: PathBuf, run_jobs: bool) {
    c.volume_policy.local_roots = vec![declared];
    c.engine.run_jobs = run_jobs;
    c.engine.workers = 4;
    c.engine.poll = Duration::from_millis(20);
}

/// The server runs no workers: submitted jobs stay PENDING until `run_jobs`.
async fn setup() -> Setup {
    let declared = tempfile::tempdir().unwrap();
    let path = declared.path().to_path_buf();
    let s = TestServer::start_with(|c| tune(c, path, false)).await;
    let root = s.admin("root").await;
    let bob = s.user("bob").await;
    s.project(&root, "p").await;
    let volume_dir = declared.path().join("vol");
    std::fs::create_dir(&volume_dir).unwrap();
    let v = s.post(&root, "/v2/storage/volumes", json!({"name": "vol", "access_mode": "RW", "service": {"type": "local", "root": volume_dir}})).await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    add_everywhere(&s, &root, "bob").await;
    Setup {
        s,
        root,
        bob,
        volume_dir,
        declared: declared.path().to_path_buf(),
        _keep: declared,
    }
}

/// Makes `username` a member of `root/p` and `root/vol` with every right but admin.
async fn add_everywhere(s: &TestServer, root: &str, username: &str) {
    let all = json!({"read": true, "copy": true, "write": true, "admin": false});
    for path in [
        "/v2/projects/root/p/members",
        "/v2/storage/volumes/root/vol/members",
    ] {
        s.add_member(root, path, username, all.clone()).await;
    }
}

async fn run_jobs(s: TestServer, declared: PathBuf) -> TestServer {
    s.restart_with(|c| tune(c, declared, true)).await
}

async fn export(
    s: &TestServer,
    token: &str,
    file: &Value,
    location: &str,
    move_it: bool,
) -> String {
    let r = s
        .post(
            token,
            &format!("/v2/storage/exports?copy_only={}", !move_it),
            json!({"source": {"file": file["id"]}, "destination": {"volume": "root/vol", "location": location}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn import(s: &TestServer, token: &str, location: &str) -> String {
    let r = s
        .post(
            token,
            "/v2/storage/imports",
            json!({"source": {"volume": "root/vol", "location": location}, "destination": {"project": "root/p"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn queued_jobs_fail_when_their_owner_loses_a_right_and_write_nothing() {
    let Setup {
        s,
        root,
        bob,
        volume_dir,
        declared: dir,
        _keep,
    } = setup().await;
    // Carol has every right too, until she is taken off the volume.
    let carol = s.user("carol").await;
    add_everywhere(&s, &root, "carol").await;
    let f1 = s.upload(&carol, "root/p", "one.txt", b"one").await;
    let f2 = s.upload(&bob, "root/p", "two.txt", b"two").await;
    std::fs::write(volume_dir.join("incoming.txt"), b"incoming").unwrap();
    let off_volume = export(&s, &carol, &f1, "one.txt", true).await;
    let off_project = export(&s, &bob, &f2, "two.txt", false).await;
    let import_id = import(&s, &bob, "incoming.txt").await;
    // The rights go while the jobs wait: carol leaves the volume, bob keeps only read on the
    // project.
    let gone = s
        .call(
            Method::DELETE,
            &root,
            "/v2/storage/volumes/root/vol/members/carol",
            None,
        )
        .await;
    assert_eq!(gone.status, 204, "{:?}", gone.body);
    let read_only = s
        .call(
            Method::PATCH,
            &root,
            "/v2/projects/root/p/members/bob/permissions",
            Some(json!({"read": true, "copy": false, "write": false})),
        )
        .await;
    assert_eq!(read_only.status, 200, "{:?}", read_only.body);

    let s = run_jobs(s, dir).await;
    let job = s
        .finished(&carol, &format!("/v2/storage/exports/{off_volume}"))
        .await;
    assert_eq!(job["state"], "FAILED", "{job:?}");
    assert_eq!(job["error"]["status"], 403, "{job:?}");
    assert_eq!(job["error"]["code"], 9020, "{job:?}");
    let job = s
        .finished(&bob, &format!("/v2/storage/exports/{off_project}"))
        .await;
    assert_eq!(job["state"], "FAILED", "{job:?}");
    assert_eq!(job["error"]["code"], 9003, "{job:?}");
    let job = s
        .finished(&bob, &format!("/v2/storage/imports/{import_id}"))
        .await;
    assert_eq!(job["state"], "FAILED", "{job:?}");
    assert_eq!(job["error"]["code"], 9003, "{job:?}");

    // Nothing was written: no object, no alias, both files still on the platform.
    assert!(!volume_dir.join("one.txt").exists());
    assert!(!volume_dir.join("two.txt").exists());
    for (file, bytes) in [(&f1, &b"one"[..]), (&f2, &b"two"[..])] {
        let got = s
            .get(
                &root,
                &format!("/v2/files/{}", file["id"].as_str().unwrap()),
            )
            .await;
        assert_eq!(got.body["storage"]["type"], "PLATFORM", "{:?}", got.body);
        let body = s.download(&root, file["id"].as_str().unwrap(), None).await;
        assert_eq!(body.bytes().await.unwrap(), bytes);
    }
    let listed = s.get(&root, "/v2/files?project=root%2Fp").await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_volume_with_unfinished_jobs_is_not_changed_under_them_unless_forced() {
    let Setup {
        s,
        root,
        bob,
        volume_dir,
        declared: dir,
        _keep,
    } = setup().await;
    let f = s
        .upload(&bob, "root/p", "moving.txt", b"moving bytes")
        .await;
    let job_id = export(&s, &bob, &f, "moving.txt", true).await;
    let patch = |body: Value, query: &'static str| {
        let s = &s;
        let root = root.clone();
        async move {
            s.call(
                Method::PATCH,
                &root,
                &format!("/v2/storage/volumes/root/vol{query}"),
                Some(body),
            )
            .await
        }
    };
    assert_error(&patch(json!({"active": false}), "").await, 409, 90007);
    assert_error(&patch(json!({"access_mode": "RO"}), "").await, 409, 90007);
    assert_error(
        &s.call(Method::DELETE, &root, "/v2/storage/volumes/root/vol", None)
            .await,
        409,
        90007,
    );
    // Nothing changed.
    let v = s.get(&root, "/v2/storage/volumes/root/vol").await;
    assert_eq!(
        (v.body["active"].clone(), v.body["access_mode"].clone()),
        (json!(true), json!("RW"))
    );

    let forced = patch(json!({"active": false}), "?force=true").await;
    assert_eq!(forced.status, 200, "{:?}", forced.body);
    assert_eq!(forced.body["active"], false);
    let job = s.get(&bob, &format!("/v2/storage/exports/{job_id}")).await;
    assert_eq!(job.body["state"], "FAILED", "{:?}", job.body);
    assert_eq!(job.body["error"]["code"], 9103, "{:?}", job.body);

    // The failed job never runs, even once workers start; the file stays on the platform.
    let s = run_jobs(s, dir.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = s.get(&bob, &format!("/v2/storage/exports/{job_id}")).await;
    assert_eq!(job.body["state"], "FAILED", "{:?}", job.body);
    assert!(!volume_dir.join("moving.txt").exists());
    let body = s.download(&bob, f["id"].as_str().unwrap(), None).await;
    assert_eq!(body.bytes().await.unwrap(), &b"moving bytes"[..]);

    // Now the volume may go, and a new one of the same name is another volume.
    let gone = s
        .call(Method::DELETE, &root, "/v2/storage/volumes/root/vol", None)
        .await;
    assert_eq!(gone.status, 204, "{:?}", gone.body);
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let again = s.post(&root, "/v2/storage/volumes", json!({"name": "vol", "access_mode": "RW", "service": {"type": "local", "root": elsewhere}})).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    let job = s.get(&bob, &format!("/v2/storage/exports/{job_id}")).await;
    assert_eq!(job.body["state"], "FAILED");
}

#[tokio::test]
async fn an_upload_completed_after_its_uploader_lost_write_access_writes_nothing() {
    let Setup {
        s,
        root,
        bob,
        _keep,
        ..
    } = setup().await;
    s.upload(&root, "root/p", "report.txt", b"the owner's report")
        .await;
    let id = s
        .upload_parts(
            &bob,
            "/v2/upload/multipart?overwrite=true",
            "root/p",
            "report.txt",
            b"bob!!",
        )
        .await;

    let removed = s
        .call(
            Method::DELETE,
            &root,
            "/v2/projects/root/p/members/bob",
            None,
        )
        .await;
    assert_eq!(removed.status, 204, "{:?}", removed.body);
    let done = s
        .call(
            Method::POST,
            &bob,
            &format!("/v2/upload/multipart/{id}/complete"),
            None,
        )
        .await;
    assert_eq!(done.status, 403, "{:?}", done.body);
    assert_eq!(done.body["code"], 9003, "{:?}", done.body);

    let listed = s.get(&root, "/v2/files?project=root%2Fp").await;
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let body = s
        .download(&root, items[0]["id"].as_str().unwrap(), None)
        .await;
    assert_eq!(body.bytes().await.unwrap(), &b"the owner's report"[..]);
}
