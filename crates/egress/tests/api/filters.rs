//! List filters: file metadata, origin, name and tag filters; project category and tags; and
//! the refusal of query keys a list does not know.

use crate::common::{assert_error, Reply, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

fn total(r: &Reply) -> &str {
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.headers["x-total-matching-query"].to_str().unwrap()
}

fn names(r: &Reply) -> Vec<&str> {
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

async fn put(s: &TestServer, t: &str, path: &str, body: Value) {
    let r = s.call(Method::PUT, t, path, Some(body)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// ann/p holds a.txt, b.txt, c.txt and d.txt with metadata and tags; returns the token and the
/// root folder's id.
async fn files_with_metadata(s: &TestServer) -> (String, String) {
    let t = s.user("ann").await;
    let project = s.project(&t, "p").await;
    let metadata = [
        (
            "a.txt",
            json!({"sample_id": "s1", "platform": "illumina"}),
            json!(["red"]),
        ),
        (
            "b.txt",
            json!({"sample_id": "s2", "platform": "illumina"}),
            json!(["blue"]),
        ),
        (
            "c.txt",
            json!({"sample_id": "s1", "platform": "nanopore"}),
            json!([]),
        ),
        (
            "d.txt",
            json!({"sample_id": 1, "platform": true}),
            json!(["red", "blue"]),
        ),
    ];
    for (name, meta, tags) in metadata {
        let f = s.upload(&t, "ann/p", name, b"x").await;
        let id = f["id"].as_str().unwrap();
        put(s, &t, &format!("/v2/files/{id}/metadata"), meta).await;
        put(s, &t, &format!("/v2/files/{id}/tags"), tags).await;
    }
    (t, project["root_folder"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn metadata_filters_match_strings_and_combine_keys_with_and() {
    let s = TestServer::start().await;
    let (t, root) = files_with_metadata(&s).await;
    let (s, t) = (&s, &t);
    let list = |q: &str| {
        let path = format!("/v2/files?project=ann%2Fp&fields=_all&{q}");
        async move { s.get(t, &path).await }
    };

    let r = list("metadata.sample_id=s1").await;
    assert_eq!((total(&r), names(&r)), ("2", vec!["a.txt", "c.txt"]));
    let r = list("metadata.sample_id=s1&metadata.platform=illumina").await;
    assert_eq!((total(&r), names(&r)), ("1", vec!["a.txt"]));
    // The same key again: any of its values.
    let r = list("metadata.sample_id=s1&metadata.sample_id=s2").await;
    assert_eq!(total(&r), "3");
    // Only stored strings match: the number 1 and the boolean true are not "1" and "true".
    assert_eq!(total(&list("metadata.sample_id=1").await), "0");
    assert_eq!(total(&list("metadata.platform=true").await), "0");
    assert_eq!(total(&list("metadata.missing=s1").await), "0");
    // With names and tags too, and on a parent folder's listing.
    let r = list("metadata.platform=illumina&tag=blue").await;
    assert_eq!(names(&r), ["b.txt"]);
    let r = list("metadata.sample_id=s1&name=c.txt&name=b.txt").await;
    assert_eq!(names(&r), ["c.txt"]);
    let r = s
        .get(t, &format!("/v2/files?parent={root}&metadata.sample_id=s2"))
        .await;
    assert_eq!(names(&r), ["b.txt"]);
    let r = s
        .get(
            t,
            &format!("/v2/files/{root}/list?metadata.sample_id=s2&fields=_all"),
        )
        .await;
    assert_eq!(names(&r), ["b.txt"]);
}

#[tokio::test]
async fn filtered_pages_count_and_link_only_the_matches() {
    let s = TestServer::start().await;
    let (t, _) = files_with_metadata(&s).await;
    let first = s
        .get(&t, "/v2/files?project=ann/p&tag=red&tag=blue&limit=2")
        .await;
    assert_eq!(total(&first), "3");
    assert_eq!(names(&first), ["a.txt", "b.txt"]);
    let next = first.body["links"][0]["href"].as_str().unwrap();
    assert!(
        next.contains("tag=red") && next.contains("offset=2"),
        "{next}"
    );
    let second = s.get(&t, next).await;
    assert_eq!((total(&second), names(&second)), ("3", vec!["d.txt"]));
    assert_eq!(second.body["links"][0]["rel"], "prev");
}

#[tokio::test]
async fn origin_filters_match_nothing_as_platform_files_have_no_origin() {
    let s = TestServer::start().await;
    let (t, _) = files_with_metadata(&s).await;
    let all = s.get(&t, "/v2/files?project=ann/p").await;
    assert!(all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["origin"] == json!({})));
    for q in [
        "origin.task=t1",
        "origin.dataset=d1",
        "origin.task=t1&name=a.txt",
    ] {
        let r = s.get(&t, &format!("/v2/files?project=ann/p&{q}")).await;
        assert_eq!(
            (total(&r), r.body["items"].clone()),
            ("0", json!([])),
            "{q}"
        );
    }
}

#[tokio::test]
async fn unknown_file_list_keys_are_refused() {
    let s = TestServer::start().await;
    let (t, root) = files_with_metadata(&s).await;
    for q in [
        "project=ann/p&tags=red",
        "project=ann/p&origin.app=x",
        "project=ann/p&metadata.=x",
        "project=ann/p&Name=a.txt",
        "project=ann/p&dataset=d",
        "project=ann/p&token=abc",
    ] {
        let r = s.get(&t, &format!("/v2/files?{q}")).await;
        assert_error(&r, 400, 90000);
        assert!(r.body["message"]
            .as_str()
            .unwrap()
            .contains("Unknown query parameter"));
    }
    assert_error(
        &s.get(&t, &format!("/v2/files/{root}/list?parent={root}"))
            .await,
        400,
        90000,
    );
    assert_error(
        &s.get(&t, &format!("/v2/files/{root}/list?project=ann/p"))
            .await,
        400,
        90000,
    );
    // What the official client sends by default is accepted.
    let r = s
        .get(
            &t,
            "/v2/files?project=ann%2Fp&offset=0&limit=50&fields=_all",
        )
        .await;
    assert_eq!(total(&r), "4");
    // The scope errors stay as they were.
    assert_error(&s.get(&t, "/v2/files?fields=_all").await, 400, 5029);
}

/// Each filter value is a condition in the query; thousands of them once made SQLite refuse the
/// query ("Expression tree is too large") and the caller got a 500.
#[tokio::test]
async fn too_many_filter_values_are_refused_before_the_query() {
    let s = TestServer::start().await;
    let (t, _) = files_with_metadata(&s).await;
    let query =
        |n: usize, param: &dyn Fn(usize) -> String| (0..n).map(param).collect::<Vec<_>>().join("&");
    let metadata = |i: usize| format!("metadata.k{i}=v");
    let r = s
        .get(
            &t,
            &format!("/v2/files?project=ann/p&{}", query(100, &metadata)),
        )
        .await;
    assert_eq!(total(&r), "0");
    for n in [101, 3000] {
        let r = s
            .get(
                &t,
                &format!("/v2/files?project=ann/p&{}", query(n, &metadata)),
            )
            .await;
        assert_error(&r, 400, 90000);
        assert!(r.body["message"]
            .as_str()
            .unwrap()
            .contains("at most 100 values"));
    }
    let mixed = format!(
        "{}&{}",
        query(60, &|i| format!("tag=t{i}")),
        query(41, &|i| format!("name=n{i}"))
    );
    assert_error(
        &s.get(&t, &format!("/v2/files?project=ann/p&{mixed}")).await,
        400,
        90000,
    );
    let tags = query(101, &|i| format!("tags=t{i}"));
    assert_error(
        &s.get(&t, &format!("/v2/projects?{tags}")).await,
        400,
        90000,
    );
}

#[tokio::test]
async fn projects_filter_by_category_tags_and_name() {
    let s = TestServer::start().await;
    let t = s.user("ann").await;
    for (name, tags) in [
        ("one", json!(["x"])),
        ("two", json!(["y"])),
        ("three", json!(["x", "z"])),
    ] {
        let r = s
            .post(&t, "/v2/projects", json!({"name": name, "tags": tags}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let store = &s.running.state.store;
    let mut p = store.get_project("ann/two").await.unwrap().unwrap();
    p.is_public = true;
    store.update_project(&p).await.unwrap();

    let (s, t) = (&s, &t);
    let list = |q: &str| {
        let path = format!("/v2/projects/?fields=_all&{q}");
        async move { s.get(t, &path).await }
    };
    let r = list("category=PUBLIC").await;
    assert_eq!((total(&r), names(&r)), ("1", vec!["two"]));
    assert_eq!(r.body["items"][0]["category"], "PUBLIC");
    let r = list("category=private").await;
    assert_eq!((total(&r), names(&r)), ("2", vec!["one", "three"]));
    let r = list("category=PRIVATE&category=PUBLIC").await;
    assert_eq!(total(&r), "3");
    let r = list("tags=x").await;
    assert_eq!(names(&r), ["one", "three"]);
    let r = list("tags=z&tags=y").await;
    assert_eq!(names(&r), ["two", "three"]);
    let r = list("tags=x&category=PRIVATE&name=three&limit=1").await;
    assert_eq!((total(&r), names(&r)), ("1", vec!["three"]));
    let r = s.get(t, "/v2/projects/ann?tags=x&limit=1").await;
    assert_eq!((total(&r), names(&r)), ("2", vec!["one"]));
    assert!(r.body["links"][0]["href"]
        .as_str()
        .unwrap()
        .contains("tags=x"));
    assert_eq!(total(&list("tags=nope").await), "0");

    assert_error(&list("category=SECRET").await, 400, 90000);
    assert_error(&list("name=one&name=two").await, 400, 90000);
    for q in ["tag=x", "owner=ann", "metadata.k=v"] {
        let r = list(q).await;
        assert_error(&r, 400, 90000);
        assert!(r.body["message"]
            .as_str()
            .unwrap()
            .contains("Unknown query parameter"));
    }
    assert_error(&s.get(t, "/v2/projects/ann?bogus=1").await, 400, 90000);
}

#[tokio::test]
async fn fields_select_keys_on_file_and_project_lists_and_gets() {
    let s = TestServer::start().await;
    let (t, root) = files_with_metadata(&s).await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let full = s.get(&t, "/v2/files?project=ann/p&limit=1").await;
    let all = s
        .get(&t, "/v2/files?project=ann/p&limit=1&fields=_all")
        .await;
    assert_eq!(full.body["items"], all.body["items"]);
    assert!(keys(&full.body["items"][0]).len() > 5);

    let some = s
        .get(&t, "/v2/files?project=ann/p&limit=1&fields=name,size,nope")
        .await;
    assert_eq!(keys(&some.body["items"][0]), ["href", "id", "name", "size"]);
    assert_eq!(total(&some), "4");
    let next = some.body["links"][0]["href"].as_str().unwrap();
    assert!(next.contains("fields=name%2Csize%2Cnope"), "{next}");
    let listed = s
        .get(&t, &format!("/v2/files/{root}/list?fields=tags"))
        .await;
    assert_eq!(keys(&listed.body["items"][0]), ["href", "id", "tags"]);

    let id = full.body["items"][0]["id"].as_str().unwrap();
    let file = s.get(&t, &format!("/v2/files/{id}?fields=metadata")).await;
    assert_eq!(keys(&file.body), ["href", "id", "metadata"]);
    assert_eq!(file.body["metadata"]["sample_id"], "s1");
    let file = s.get(&t, &format!("/v2/files/{id}?fields=_all")).await;
    assert_eq!(file.body, full.body["items"][0]);

    let project = s.get(&t, "/v2/projects/ann/p?fields=name,tags").await;
    assert_eq!(keys(&project.body), ["href", "id", "name", "tags"]);
    let projects = s.get(&t, "/v2/projects/ann?fields=root_folder").await;
    assert_eq!(
        keys(&projects.body["items"][0]),
        ["href", "id", "root_folder"]
    );
    assert_eq!(projects.body["items"][0]["root_folder"], root.as_str());
    // Errors are not shaped by the selector.
    assert_error(
        &s.get(&t, "/v2/files/000000000000000000000000?fields=name")
            .await,
        404,
        5002,
    );
}
