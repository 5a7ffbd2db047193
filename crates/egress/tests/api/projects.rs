//! Projects, members and visibility.

use crate::common::{assert_error, TestServer};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn create_list_page_patch_delete() {
    let s = TestServer::start().await;
    let token = s.user("ann").await;
    let p = s.project(&token, "My Project").await;
    assert_eq!(p["id"], "ann/my-project");
    assert_eq!(p["href"], format!("{}/v2/projects/ann/my-project", s.base));
    assert!(uuid::Uuid::parse_str(p["billing_group"].as_str().unwrap()).is_ok());
    assert!(p["root_folder"].is_string());
    assert!(p["created_on"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        s.project(&token, "My Project").await["id"],
        "ann/my-project-1",
        "slugs stay unique"
    );
    s.project(&token, "Third").await;

    let page = s.get(&token, "/v2/projects/?limit=2&fields=_all").await;
    assert_eq!(page.headers["x-total-matching-query"], "3");
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        page.body["href"],
        format!("{}/v2/projects/?limit=2&fields=_all", s.base)
    );
    let next = page.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "next")
        .unwrap()["href"]
        .as_str()
        .unwrap()
        .to_string();
    let last = s.get(&token, &next).await;
    assert_eq!(last.body["items"].as_array().unwrap().len(), 1);
    assert!(last.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["rel"] != "next"));
    let past = s.get(&token, "/v2/projects?offset=50").await;
    assert_eq!(
        (
            past.status.as_u16(),
            past.body["items"].as_array().unwrap().len()
        ),
        (200, 0)
    );
    assert_eq!(
        s.get(&token, "/v2/projects/ann").await.headers["x-total-matching-query"],
        "3"
    );
    assert_error(&s.get(&token, "/v2/projects?limit=0").await, 400, 90000);
    assert_error(&s.get(&token, "/v2/projects?limit=1000").await, 400, 90000);

    let patched = s
        .call(
            Method::PATCH,
            &token,
            "/v2/projects/ann/third",
            Some(json!({"description": "d", "tags": ["x"]})),
        )
        .await;
    assert_eq!(
        (
            patched.body["description"].as_str(),
            patched.body["tags"].clone()
        ),
        (Some("d"), json!(["x"]))
    );
    assert_error(
        &s.call(
            Method::PATCH,
            &token,
            "/v2/projects/ann/third",
            Some(json!({"billing_group": "nope"})),
        )
        .await,
        400,
        4005,
    );
    assert_eq!(
        s.call(
            Method::DELETE,
            &token,
            "/v2/projects/ann/third",
            Some(json!({}))
        )
        .await
        .status,
        204
    );
    assert_error(&s.get(&token, "/v2/projects/ann/third").await, 404, 3002);
}

#[tokio::test]
async fn only_members_see_a_project() {
    let s = TestServer::start().await;
    let ann = s.user("ann").await;
    let bob = s.user("bob").await;
    s.project(&ann, "secret").await;
    assert_error(&s.get(&bob, "/v2/projects/ann/secret").await, 404, 3002);
    assert_eq!(
        s.get(&bob, "/v2/projects").await.headers["x-total-matching-query"],
        "0"
    );
    assert_error(
        &s.call(Method::DELETE, &bob, "/v2/projects/ann/secret", None)
            .await,
        404,
        3002,
    );

    let added = s.post(&ann, "/v2/projects/ann/secret/members", json!({"username": "bob", "type": "USER", "permissions": {"read": true, "write": false}})).await;
    assert_eq!(added.status, 200, "{:?}", added.body);
    assert_eq!(
        added.body["permissions"],
        json!({"read": true, "copy": false, "write": false, "execute": false, "admin": false})
    );
    assert_eq!(s.get(&bob, "/v2/projects/ann/secret").await.status, 200);
    assert_error(
        &s.call(
            Method::PATCH,
            &bob,
            "/v2/projects/ann/secret",
            Some(json!({"name": "mine"})),
        )
        .await,
        403,
        3001,
    );
    let members = s.get(&bob, "/v2/projects/ann/secret/members").await;
    assert_eq!(members.headers["x-total-matching-query"], "2");
    let perm = s
        .call(
            Method::PATCH,
            &ann,
            "/v2/projects/ann/secret/members/bob/permissions",
            Some(json!({"write": true})),
        )
        .await;
    assert_eq!(perm.body["write"], true);
    assert_eq!(
        s.get(&ann, "/v2/projects/ann/secret/members/bob")
            .await
            .body["permissions"]["write"],
        true
    );
    assert_error(
        &s.call(
            Method::DELETE,
            &ann,
            "/v2/projects/ann/secret/members/ann",
            None,
        )
        .await,
        403,
        3001,
    );
    assert_error(
        &s.post(
            &ann,
            "/v2/projects/ann/secret/members",
            json!({"username": "ghost"}),
        )
        .await,
        404,
        2002,
    );
    assert_eq!(
        s.call(
            Method::DELETE,
            &ann,
            "/v2/projects/ann/secret/members/bob",
            None
        )
        .await
        .status,
        204
    );
    assert_error(&s.get(&bob, "/v2/projects/ann/secret").await, 404, 3002);
}

#[tokio::test]
async fn bad_project_input() {
    let s = TestServer::start().await;
    let token = s.user("ann").await;
    assert_error(
        &s.post(&token, "/v2/projects", json!({"name": "  "})).await,
        400,
        3007,
    );
    assert_error(
        &s.post(
            &token,
            "/v2/projects",
            json!({"name": "x", "billing_group": "12"}),
        )
        .await,
        400,
        4005,
    );
    assert_error(&s.get(&token, "/v2/files?project=noslash").await, 400, 5005);
}
