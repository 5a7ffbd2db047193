//! Security tests: edge. What one user may learn about another (F11).

use crate::common::TestServer;
use serde_json::json;

/// F11: another user's profile shows the name only; email, contact details and role are for
/// the user themself and platform administrators.
#[tokio::test]
async fn a_user_sees_another_users_name_but_not_their_email_or_role() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let root = s.admin("root").await;

    let seen_by_bob = s.get(&bob, "/v2/users/alice").await;
    assert_eq!(seen_by_bob.status, 200, "{:?}", seen_by_bob.body);
    assert_eq!(seen_by_bob.body["username"], "alice");
    assert_eq!(
        seen_by_bob.body["href"],
        format!("{}/v2/users/alice", s.base)
    );
    for hidden in ["email", "role", "phone", "address", "affiliation"] {
        assert!(
            seen_by_bob.body[hidden].is_null(),
            "{hidden}: {:?}",
            seen_by_bob.body
        );
    }
    assert!(!seen_by_bob.body.to_string().contains("alice@example.org"));
    // An administrator's profile does not reveal that it is one.
    assert!(s.get(&bob, "/v2/users/root").await.body["role"].is_null());

    for (who, token) in [("alice herself", &alice), ("an administrator", &root)] {
        let full = s.get(token, "/v2/users/alice").await;
        assert_eq!(full.status, 200, "{who}");
        assert_eq!(full.body["email"], "alice@example.org", "{who}");
        assert_eq!(full.body["role"], "USER", "{who}");
    }
    assert_eq!(
        s.get(&bob, "/v2/user").await.body["email"],
        "bob@example.org"
    );
}

/// F11: members of a project see each other's usernames and permissions, never emails.
#[tokio::test]
async fn member_lists_show_usernames_and_permissions_but_no_email() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    s.user("carol").await;
    let project = s.project(&alice, "shared").await;
    let members = format!("/v2/projects/{}/members", project["id"].as_str().unwrap());
    for name in ["bob", "carol"] {
        let added = s
            .post(
                &alice,
                &members,
                json!({"username": name, "permissions": {"read": true}}),
            )
            .await;
        assert_eq!(added.status, 200, "{:?}", added.body);
        assert!(added.body["email"].is_null(), "{:?}", added.body);
    }

    let list = s.get(&bob, &members).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let items = list.body["items"].as_array().unwrap();
    let mut names: Vec<&str> = items
        .iter()
        .map(|m| m["username"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "bob", "carol"]);
    for m in items {
        assert!(m["email"].is_null(), "{m}");
        assert_eq!(m["permissions"]["read"], true, "{m}");
    }
    assert!(
        !list.body.to_string().contains("@example.org"),
        "{:?}",
        list.body
    );

    let one = s.get(&bob, &format!("{members}/carol")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["username"], "carol");
    assert!(one.body["email"].is_null(), "{:?}", one.body);
}
