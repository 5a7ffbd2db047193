//! Continuation-token paging: `GET /v2/files/scroll` and `GET /v2/files/{id}/scroll`.

use crate::common::{assert_error, Reply, TestServer};
use serde_json::{json, Value};

fn ok(r: &Reply) -> &Reply {
    assert_eq!(r.status, 200, "{:?}", r.body);
    r
}

fn ids(r: &Reply) -> Vec<String> {
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// The `next` link of a page, if any; every link has `rel` and `method`.
fn next(r: &Reply) -> Option<String> {
    let links = r.body["links"].as_array().unwrap();
    for l in links {
        assert!(l["rel"].is_string() && l["method"] == "GET", "{:?}", r.body);
    }
    links
        .iter()
        .find(|l| l["rel"] == "next")
        .map(|l| l["href"].as_str().unwrap().to_string())
}

/// Follows `next` links from `first` to the end; returns every id, in order.
async fn walk(s: &TestServer, t: &str, first: &str) -> Vec<String> {
    let mut r = s.get(t, first).await;
    let mut seen = Vec::new();
    loop {
        ok(&r);
        seen.extend(ids(&r));
        match next(&r) {
            Some(href) => r = s.get(t, &href).await,
            None => return seen,
        }
    }
}

async fn folder(s: &TestServer, t: &str, name: &str, dest: Value) -> Value {
    let mut body = json!({"name": name, "type": "folder"});
    body.as_object_mut()
        .unwrap()
        .extend(dest.as_object().unwrap().clone());
    let r = s.post(t, "/v2/files", body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

/// ann/p holds 7 folders and 2 files at its root, and a folder `sub` with 5 children.
async fn tree(s: &TestServer) -> (String, String) {
    let t = s.user("ann").await;
    s.project(&t, "p").await;
    for i in 0..6 {
        folder(s, &t, &format!("d{i}"), json!({"project": "ann/p"})).await;
    }
    let sub = folder(s, &t, "sub", json!({"project": "ann/p"})).await;
    let sub = sub["id"].as_str().unwrap().to_string();
    s.upload(&t, "ann/p", "a.txt", b"a").await;
    s.upload(&t, "ann/p", "b.txt", b"b").await;
    for i in 0..5 {
        folder(s, &t, &format!("s{i}"), json!({"parent": sub})).await;
    }
    (t, sub)
}

#[tokio::test]
async fn scrolling_a_project_returns_every_file_once_in_list_order() {
    let s = TestServer::start().await;
    let (t, _) = tree(&s).await;
    let listed = ids(ok(&s.get(&t, "/v2/files?project=ann%2Fp&limit=100").await));
    assert_eq!(listed.len(), 9);
    for limit in [1, 2, 4, 9, 50] {
        let first =
            format!("/v2/files/scroll?project=ann%2Fp&limit={limit}&token=init&fields=_all");
        let r = ok(&s.get(&t, &first).await).body.clone();
        assert!(
            r["href"].as_str().unwrap().ends_with(&first),
            "href reproduces the page: {r:?}"
        );
        assert_eq!(walk(&s, &t, &first).await, listed, "limit {limit}");
    }
    // No token starts too; the total header counts the whole listing.
    let r = s.get(&t, "/v2/files/scroll?project=ann%2Fp&limit=4").await;
    assert_eq!(ok(&r).headers["x-total-matching-query"], "9");
    assert_eq!(ids(&r), listed[..4]);
    // The last page has no next link.
    let r = s.get(&t, "/v2/files/scroll?project=ann%2Fp&limit=9").await;
    assert_eq!(next(ok(&r)), None);
    assert_eq!(r.body["links"], json!([]));
}

#[tokio::test]
async fn scrolling_keeps_filters_and_the_fields_selector_on_every_page() {
    let s = TestServer::start().await;
    let (t, _) = tree(&s).await;
    let first = "/v2/files/scroll?project=ann%2Fp&limit=1&name=d1&name=a.txt&name=d5&fields=name";
    let r = ok(&s.get(&t, first).await).body.clone();
    assert_eq!(r["items"][0]["name"], "d1");
    assert!(
        r["items"][0].get("size").is_none(),
        "fields selects keys: {r:?}"
    );
    let all = walk(&s, &t, first).await;
    assert_eq!(all.len(), 3);
    let r = s.get(&t, first).await;
    assert_eq!(r.headers["x-total-matching-query"], "3");
    // Tags and origin filters are taken too.
    let r = s
        .get(
            &t,
            "/v2/files/scroll?project=ann%2Fp&tag=none&origin.task=x",
        )
        .await;
    assert_eq!(ids(ok(&r)), Vec::<String>::new());
}

#[tokio::test]
async fn a_folder_scrolls_by_parent_and_by_its_own_route() {
    let s = TestServer::start().await;
    let (t, sub) = tree(&s).await;
    let listed = ids(ok(&s.get(&t, &format!("/v2/files/{sub}/list")).await));
    assert_eq!(listed.len(), 5);
    let by_route = walk(
        &s,
        &t,
        &format!("/v2/files/{sub}/scroll?token=init&limit=2"),
    )
    .await;
    let by_parent = walk(
        &s,
        &t,
        &format!("/v2/files/scroll?parent={sub}&token=init&limit=3"),
    )
    .await;
    assert_eq!((&by_route, &by_parent), (&listed, &listed));
}

#[tokio::test]
async fn files_added_between_pages_do_not_shift_the_rest() {
    let s = TestServer::start().await;
    let (t, sub) = tree(&s).await;
    let r = ok(&s.get(&t, &format!("/v2/files/{sub}/scroll?limit=2")).await)
        .body
        .clone();
    let seen: Vec<&str> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["s0", "s1"]);
    // A file sorting before the position, and one after it.
    folder(&s, &t, "a-early", json!({"parent": sub})).await;
    folder(&s, &t, "s2a", json!({"parent": sub})).await;
    let href = r["links"][0]["href"].as_str().unwrap();
    let rest = walk(&s, &t, href).await;
    let names: Vec<String> = {
        let mut names = Vec::new();
        for id in &rest {
            let f = s.get(&t, &format!("/v2/files/{id}")).await;
            names.push(f.body["name"].as_str().unwrap().to_string());
        }
        names
    };
    assert_eq!(names, ["s2", "s2a", "s3", "s4"]);
}

#[tokio::test]
async fn tokens_that_the_server_did_not_make_for_this_folder_are_refused() {
    let s = TestServer::start().await;
    let (t, sub) = tree(&s).await;
    let r = ok(&s.get(&t, "/v2/files/scroll?project=ann%2Fp&limit=2").await)
        .body
        .clone();
    let href = r["links"][0]["href"].as_str().unwrap().to_string();
    let token = href.split("token=").nth(1).unwrap().to_string();
    let (body, sig) = token.split_once('.').unwrap();
    let flipped = format!(
        "{}{}.{sig}",
        &body[..body.len() - 1],
        if body.ends_with('A') { "B" } else { "A" }
    );
    for bad in [
        "garbage".to_string(),
        "a.b".to_string(),
        format!("{body}.00"),
        flipped,
        format!("{body}."),
        format!(".{sig}"),
    ] {
        let r = s
            .get(&t, &format!("/v2/files/scroll?project=ann%2Fp&token={bad}"))
            .await;
        assert_error(&r, 400, 90000);
    }
    // A good token of the project root is no token for another folder.
    let r = s
        .get(&t, &format!("/v2/files/{sub}/scroll?token={token}"))
        .await;
    assert_error(&r, 400, 90000);
    // Another user can follow no link into ann's project.
    let bob = s.user("bob").await;
    assert_error(&s.get(&bob, &href).await, 404, 3002);
}

#[tokio::test]
async fn scroll_refuses_metadata_filters_offset_and_unknown_keys() {
    let s = TestServer::start().await;
    let (t, sub) = tree(&s).await;
    for bad in [
        "/v2/files/scroll?project=ann%2Fp&metadata.sample=x",
        "/v2/files/scroll?project=ann%2Fp&offset=2",
        "/v2/files/scroll?project=ann%2Fp&dataset=x",
        "/v2/files/scroll?project=ann%2Fp&limit=0",
        "/v2/files/scroll?project=ann%2Fp&limit=101",
        "/v2/files/scroll?project=ann%2Fp&token=init&cont_token=init",
    ] {
        assert_error(&s.get(&t, bad).await, 400, 90000);
    }
    assert_error(
        &s.get(&t, &format!("/v2/files/{sub}/scroll?metadata.a=b"))
            .await,
        400,
        90000,
    );
    assert_error(&s.get(&t, "/v2/files/scroll").await, 400, 5029);
    assert_error(
        &s.get(
            &t,
            &format!("/v2/files/scroll?project=ann%2Fp&parent={sub}"),
        )
        .await,
        400,
        5031,
    );
    assert_error(
        &s.get(&t, "/v2/files/scroll?project=nonsense").await,
        400,
        5005,
    );
    assert_error(
        &s.get(&t, "/v2/files/scroll?project=ann%2Fnone").await,
        404,
        3002,
    );
    assert_error(&s.get(&t, "/v2/files/nope/scroll").await, 404, 5002);
    let file = s.upload(&t, "ann/p", "c.txt", b"c").await;
    let file = file["id"].as_str().unwrap();
    assert_error(
        &s.get(&t, &format!("/v2/files/{file}/scroll")).await,
        400,
        5022,
    );
    // `cont_token` is taken as the token's name too.
    let r = s
        .get(
            &t,
            &format!("/v2/files/{sub}/scroll?cont_token=init&limit=5"),
        )
        .await;
    assert_eq!(ids(ok(&r)).len(), 5);
}
