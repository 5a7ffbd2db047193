//! `POST /v2/projects/{owner}/{slug}/members/leave`.

use crate::common::{assert_error, TestServer};
use reqwest::Method;
use serde_json::json;

const LEAVE: &str = "/v2/projects/ann/p/members/leave";

#[tokio::test]
async fn a_member_leaves_and_loses_access_at_once() {
    let s = TestServer::start().await;
    let ann = s.user("ann").await;
    let bob = s.user("bob").await;
    s.project(&ann, "p").await;
    s.add_member(
        &ann,
        "/v2/projects/ann/p/members",
        "bob",
        json!({"write": true, "admin": true}),
    )
    .await;
    assert_eq!(s.get(&bob, "/v2/projects/ann/p").await.status, 200);
    let r = s.post(&bob, LEAVE, json!(null)).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_error(&s.get(&bob, "/v2/projects/ann/p").await, 404, 3002);
    assert_error(
        &s.get(&ann, "/v2/projects/ann/p/members/bob").await,
        404,
        3002,
    );
    // Once gone, leaving again is as for any non-member.
    assert_error(&s.post(&bob, LEAVE, json!(null)).await, 404, 3002);
}

#[tokio::test]
async fn the_owner_and_non_members_cannot_leave() {
    let s = TestServer::start().await;
    let ann = s.user("ann").await;
    let bob = s.user("bob").await;
    let root = s.admin("root").await;
    s.project(&ann, "p").await;
    let r = s.post(&ann, LEAVE, json!(null)).await;
    assert_error(&r, 403, 3001);
    assert!(r.body["message"].as_str().unwrap().contains("owner"));
    assert_eq!(
        s.get(&ann, "/v2/projects/ann/p/members/ann").await.body["permissions"]["admin"],
        true,
        "the owner stays the admin"
    );
    // Not a member, a platform administrator who is not a member, and no such project: the
    // same 404, so a private project stays invisible.
    for (t, path) in [
        (&bob, LEAVE),
        (&root, LEAVE),
        (&bob, "/v2/projects/ann/none/members/leave"),
    ] {
        assert_error(&s.post(t, path, json!(null)).await, 404, 3002);
    }
    assert_error(&s.post("bad-token", LEAVE, json!(null)).await, 401, 90001);
}

#[tokio::test]
async fn a_user_named_leave_stays_reachable_as_a_member() {
    let s = TestServer::start().await;
    let ann = s.user("ann").await;
    s.user("leave").await;
    s.project(&ann, "p").await;
    s.add_member(&ann, "/v2/projects/ann/p/members", "leave", json!({}))
        .await;
    let member = s.get(&ann, LEAVE).await;
    assert_eq!(member.status, 200, "{:?}", member.body);
    assert_eq!(member.body["username"], "leave");
    let r = s
        .call(
            Method::PATCH,
            &ann,
            "/v2/projects/ann/p/members/leave/permissions",
            Some(json!({"write": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s.call(Method::DELETE, &ann, LEAVE, None).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    // A POST to any other member is no call at all.
    assert_error(
        &s.post(&ann, "/v2/projects/ann/p/members/ann", json!(null))
            .await,
        405,
        90006,
    );
}
