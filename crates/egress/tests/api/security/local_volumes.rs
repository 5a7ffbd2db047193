//! Local volumes are folders on the server. Only a platform administrator makes one, only inside
//! a folder the operator declared, never over the server's own files; and no key, symlink or
//! special file reaches outside the root, whatever the folder holds when a job runs.

use crate::common::{assert_error, TestServer};
use serde_json::{json, Value};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Setup {
    s: TestServer,
    admin: String,
    user: String,
    declared: tempfile::TempDir,
}

async fn setup() -> Setup {
    let declared = tempfile::tempdir().unwrap();
    let roots = vec![declared.path().to_path_buf()];
    let s = TestServer::start_with(|c| {
        c.volume_policy.local_roots = roots;
        c.engine.poll = Duration::from_millis(20);
    })
    .await;
    let admin = s.admin("root").await;
    let user = s.user("bob").await;
    s.project(&admin, "p").await;
    Setup {
        s,
        admin,
        user,
        declared,
    }
}

/// Makes the folder `vol` in `declared` and the local volume `root/vol` on it.
async fn volume_in(s: &TestServer, admin: &str, declared: &Path) -> PathBuf {
    let root = declared.join("vol");
    std::fs::create_dir(&root).unwrap();
    let ok = s
        .post(admin, "/v2/storage/volumes", local_body("vol", &root))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    root
}

fn local_body(name: &str, root: &Path) -> Value {
    json!({"name": name, "access_mode": "RW", "service": {"type": "local", "root": root}})
}

async fn import(s: &TestServer, token: &str, volume: &str, location: &str) -> Value {
    s.import_finished(
        token,
        json!({"source": {"volume": volume, "location": location}, "destination": {"project": "root/p"}}),
    )
    .await
}

fn project_files(s: &TestServer) -> Vec<PathBuf> {
    std::fs::read_dir(s.data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[tokio::test]
async fn only_administrators_make_local_volumes_inside_declared_folders() {
    let Setup {
        s,
        admin,
        user,
        declared,
    } = setup().await;
    let inside = declared.path().join("bobs");
    std::fs::create_dir(&inside).unwrap();
    assert_error(
        &s.post(&user, "/v2/storage/volumes", local_body("mine", &inside))
            .await,
        403,
        9020,
    );
    let data_dir = s.data_dir().to_path_buf();
    let outside = tempfile::tempdir().unwrap();
    let via_link = declared.path().join("data-link");
    symlink(&data_dir, &via_link).unwrap();
    let missing = declared.path().join("missing");
    for root in [
        data_dir.clone(),
        data_dir.join("platform"),
        PathBuf::from("/"),
        outside.path().to_path_buf(),
        via_link,
        missing,
        declared.path().join("bobs/../../x"),
    ] {
        let r = s
            .post(&admin, "/v2/storage/volumes", local_body("vol", &root))
            .await;
        assert_error(&r, 400, 9017);
    }
    let ok = s
        .post(&admin, "/v2/storage/volumes", local_body("vol", &inside))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(
        ok.body["service"]["root"],
        std::fs::canonicalize(&inside)
            .unwrap()
            .display()
            .to_string()
    );
}

#[tokio::test]
async fn a_server_without_declared_folders_has_no_local_volumes() {
    let s = TestServer::start().await;
    let admin = s.admin("root").await;
    let dir = tempfile::tempdir().unwrap();
    assert_error(
        &s.post(&admin, "/v2/storage/volumes", local_body("vol", dir.path()))
            .await,
        400,
        9017,
    );
}

#[tokio::test]
async fn symlinks_and_special_files_never_reach_outside_the_root() {
    let Setup {
        s, admin, declared, ..
    } = setup().await;
    let root = volume_in(&s, &admin, declared.path()).await;
    let data_dir = s.data_dir().to_path_buf();
    std::fs::write(root.join("plain.txt"), b"plain").unwrap();
    symlink(data_dir.join("secret.key"), root.join("key")).unwrap();
    symlink(&data_dir, root.join("data")).unwrap();
    let fifo = root.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());

    // Browsing shows the regular file only.
    let listed = s.get(&admin, "/v2/storage/volumes/root/vol/list").await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let locations: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["location"].as_str().unwrap())
        .collect();
    assert_eq!(locations, ["plain.txt"]);
    assert_eq!(listed.body["prefixes"], json!([]));
    let under_link = s
        .get(&admin, "/v2/storage/volumes/root/vol/list?prefix=data/")
        .await;
    assert_ne!(under_link.status, 200, "{:?}", under_link.body);
    for location in ["key", "data/secret.key", "data/egress.db", "fifo"] {
        let info = s
            .get(
                &admin,
                &format!("/v2/storage/volumes/root/vol/object?location={location}"),
            )
            .await;
        assert!(
            info.status == 403 || info.status == 404,
            "{location}: {:?}",
            info.body
        );
    }

    // Imports of a link, a file behind a linked folder, or a FIFO fail (without hanging) and
    // make no file.
    for location in ["key", "data/secret.key", "fifo"] {
        let job = import(&s, &admin, "root/vol", location).await;
        assert_eq!(job["state"], "FAILED", "{location}: {job:?}");
        assert!(job["error"]["code"].as_u64().is_some(), "{job:?}");
    }
    let plain = import(&s, &admin, "root/vol", "plain.txt").await;
    assert_eq!(plain["state"], "COMPLETED", "{plain:?}");
    let files = s.get(&admin, "/v2/files?project=root%2Fp").await;
    assert_eq!(files.body["items"].as_array().unwrap().len(), 1);

    // Exports through a linked folder, or over a link to the server's key, write nothing
    // outside the root.
    let f = s
        .upload(&admin, "root/p", "evil.txt", b"attacker bytes")
        .await;
    let before = project_files(&s);
    let key_before = std::fs::read(data_dir.join("secret.key")).unwrap();
    for (location, overwrite) in [("data/evil.txt", true), ("data/secret.key", true)] {
        let r = s
            .post(
                &admin,
                "/v2/storage/exports?copy_only=true",
                json!({"source": {"file": f["id"]}, "destination": {"volume": "root/vol", "location": location}, "overwrite": overwrite}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let id = r.body["id"].as_str().unwrap().to_string();
        let job = s
            .finished(&admin, &format!("/v2/storage/exports/{id}"))
            .await;
        assert_eq!(job["state"], "FAILED", "{location}: {job:?}");
    }
    assert_eq!(project_files(&s), before, "nothing new in the data dir");
    assert_eq!(
        std::fs::read(data_dir.join("secret.key")).unwrap(),
        key_before
    );
    // Over a link at the key itself, the link is replaced; its target is untouched.
    let r = s
        .post(
            &admin,
            "/v2/storage/exports?copy_only=true",
            json!({"source": {"file": f["id"]}, "destination": {"volume": "root/vol", "location": "key"}, "overwrite": true}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let job = s
        .finished(&admin, &format!("/v2/storage/exports/{id}"))
        .await;
    assert_eq!(job["state"], "COMPLETED", "{job:?}");
    assert_eq!(std::fs::read(root.join("key")).unwrap(), b"attacker bytes");
    assert!(!root.join("key").is_symlink());
    assert_eq!(
        std::fs::read(data_dir.join("secret.key")).unwrap(),
        key_before
    );
}

#[tokio::test]
async fn a_root_moved_behind_a_symlink_after_creation_is_no_longer_served() {
    let Setup {
        s, admin, declared, ..
    } = setup().await;
    let root = volume_in(&s, &admin, declared.path()).await;
    assert_eq!(
        s.get(&admin, "/v2/storage/volumes/root/vol/list")
            .await
            .status,
        200
    );
    std::fs::rename(&root, declared.path().join("elsewhere")).unwrap();
    symlink(s.data_dir(), &root).unwrap();
    assert_error(
        &s.get(&admin, "/v2/storage/volumes/root/vol/list").await,
        403,
        9103,
    );
}

/// `overwrite=false` onto an existing object compares it with the file without reading it
/// into memory: a 1 GiB (sparse) object costs nothing like 1 GiB.
#[tokio::test]
async fn overwrite_false_onto_a_huge_object_does_not_read_it_into_memory() {
    let Setup {
        s, admin, declared, ..
    } = setup().await;
    let root = volume_in(&s, &admin, declared.path()).await;
    let huge = std::fs::File::create(root.join("huge.bin")).unwrap();
    huge.set_len(1 << 30).unwrap();
    let f = s.upload(&admin, "root/p", "small.txt", b"small").await;
    let peak_before = peak_rss_kib();
    let r = s
        .post(
            &admin,
            "/v2/storage/exports?copy_only=true",
            json!({"source": {"file": f["id"]}, "destination": {"volume": "root/vol", "location": "huge.bin"}, "overwrite": false}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let job = s
        .finished(&admin, &format!("/v2/storage/exports/{id}"))
        .await;
    assert_eq!(job["state"], "FAILED", "{job:?}");
    assert_eq!(job["error"]["code"], 9107, "{job:?}");
    let grown = peak_rss_kib() - peak_before;
    assert!(
        grown < 256 * 1024,
        "peak memory grew by {grown} KiB for a 1 GiB object"
    );
}

/// This process's peak resident memory (the test server runs in it).
fn peak_rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A prefix or location with an empty segment is the caller's mistake (400 9011), not a volume
/// that is inaccessible as configured (403 9103), which is what it used to get.
#[tokio::test]
async fn keys_with_empty_segments_are_bad_requests() {
    let Setup {
        s, admin, declared, ..
    } = setup().await;
    volume_in(&s, &admin, declared.path()).await;
    for path in [
        "/v2/storage/volumes/root/vol/list?prefix=a//b",
        "/v2/storage/volumes/root/vol/object?location=a//b",
    ] {
        assert_error(&s.get(&admin, path).await, 400, 9011);
    }
}
