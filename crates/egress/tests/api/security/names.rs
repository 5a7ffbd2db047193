//! Security tests: names. Every name an import makes passes the rule a name given through the
//! API passes; a key that cannot map to a legal name fails, naming the key, with nothing made.
//! (A local volume cannot hold keys with `.`, `..` or empty segments, or segments over 255
//! bytes; `engine::imports` tests those keys, and submission is tested here.)

use crate::common::{assert_error, TestServer};
use serde_json::{json, Value};

/// Ann, an administrator (only they make local volumes), with project `ann/p` and a local
/// volume `ann/src` whose objects are `files` (key, body) under the prefix `pre`.
async fn server(files: &[(&str, &str)]) -> (TestServer, String, tempfile::TempDir) {
    let (s, t, root) = TestServer::with_local_root().await;
    for (key, body) in files {
        let path = root.path().join("pre").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let v = s.post(&t, "/v2/storage/volumes", json!({"name": "src", "access_mode": "RO", "service": {"type": "local", "root": root.path(), "prefix": "pre"}})).await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    (s, t, root)
}

fn from(location: &str) -> Value {
    json!({"volume": "ann/src", "location": location})
}

async fn names_in_root(s: &TestServer, t: &str) -> Vec<String> {
    let r = s.get(t, "/v2/files?project=ann/p").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut names: Vec<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Asserts a FAILED import whose error is 400 9011 naming `key` (as Rust's `{:?}` writes it).
fn assert_failed_naming(job: &Value, key: &str) {
    assert_eq!(job["state"], "FAILED", "{job:?}");
    assert_eq!(
        (
            job["error"]["status"].as_u64(),
            job["error"]["code"].as_u64()
        ),
        (Some(400), Some(9011)),
        "{job:?}"
    );
    let message = job["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{key:?}")),
        "{message:?} names {key:?}"
    );
}

#[tokio::test]
async fn a_folder_import_with_an_unnamable_key_fails_naming_it_and_imports_nothing() {
    let (s, t, _root) = server(&[
        ("imp/a.txt", "A"),
        ("imp/sub/b.txt", "B"),
        ("imp/tab\there", "T"),
        ("ctl/d\u{1}ir/x.txt", "X"),
        ("ctl/y.txt", "Y"),
    ])
    .await;
    let dest = json!({"project": "ann/p"});

    let kept = s
        .import_finished(&t, json!({"source": from("imp/"), "destination": dest}))
        .await;
    assert_failed_naming(&kept, "imp/tab\there");
    assert_eq!(kept["progress"]["objects_imported"], 0);
    assert_eq!(
        names_in_root(&s, &t).await,
        Vec::<String>::new(),
        "nothing was made, not even the top folder or the legal files"
    );
    let flat = s.import_finished(
        &t,
        json!({"source": from("imp/"), "destination": dest, "preserve_folder_structure": false}),
    )
    .await;
    assert_failed_naming(&flat, "imp/tab\there");
    assert_eq!(names_in_root(&s, &t).await, Vec::<String>::new());

    // A folder segment with a control character: refused where it would become a folder…
    let kept = s
        .import_finished(&t, json!({"source": from("ctl/"), "destination": dest}))
        .await;
    assert_failed_naming(&kept, "ctl/d\u{1}ir/x.txt");
    assert_eq!(names_in_root(&s, &t).await, Vec::<String>::new());
    // …and fine when the structure is flattened, since no folder is made from it.
    let flat = s.import_finished(
        &t,
        json!({"source": from("ctl/"), "destination": dest, "preserve_folder_structure": false}),
    )
    .await;
    assert_eq!(flat["state"], "COMPLETED", "{flat:?}");
    assert_eq!(names_in_root(&s, &t).await, ["x.txt", "y.txt"]);
}

#[tokio::test]
async fn locations_whose_last_segment_cannot_be_a_name_are_refused_at_submission() {
    let (s, t, _root) = server(&[("ok.txt", "O")]).await;
    let dest = json!({"project": "ann/p"});
    let long = "x".repeat(300);
    let wide = "é".repeat(128);
    for location in [
        format!("dir/{long}"),
        format!("dir/{wide}"),
        format!("{long}/"),
    ] {
        let r = s
            .post(
                &t,
                "/v2/storage/imports",
                json!({"source": from(&location), "destination": dest}),
            )
            .await;
        assert_error(&r, 400, 9011);
        let message = r.body["message"].as_str().unwrap();
        assert!(
            message.contains(&location),
            "{message:?} names {location:?}"
        );
    }
    // With a name of its own, or a flattened folder, the segment names nothing.
    let named = s
        .post(&t, "/v2/storage/imports", json!({"source": from(&format!("dir/{long}")), "destination": {"project": "ann/p", "name": "short"}}))
        .await;
    assert_eq!(named.status, 200, "{:?}", named.body);
    let flat = s
        .post(&t, "/v2/storage/imports", json!({"source": from(&format!("{long}/")), "destination": dest, "preserve_folder_structure": false}))
        .await;
    assert_eq!(flat.status, 200, "{:?}", flat.body);
    // A name given is held to the API's rule as before.
    assert_error(
        &s.post(
            &t,
            "/v2/storage/imports",
            json!({"source": from("ok.txt"), "destination": {"project": "ann/p", "name": ".."}}),
        )
        .await,
        400,
        5024,
    );
}

#[tokio::test]
async fn autorename_never_makes_a_name_over_255_bytes() {
    let long = "n".repeat(254);
    let key = format!("long/{long}");
    let (s, t, _root) = server(&[(&key, "L")]).await;
    let body =
        json!({"source": from(&key), "destination": {"project": "ann/p"}, "autorename": true});
    let first = s.import_finished(&t, body.clone()).await;
    assert_eq!(first["state"], "COMPLETED", "{first:?}");
    assert_eq!(first["result"]["name"], long.as_str());
    // `_1_` + 254 bytes would be 257: the clash cannot be resolved by renaming.
    let second = s.import_finished(&t, body).await;
    assert_eq!(second["state"], "FAILED", "{second:?}");
    assert_eq!(second["error"]["code"], 9108, "{second:?}");
    assert_eq!(names_in_root(&s, &t).await, [long]);
}
