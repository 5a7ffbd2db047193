//! Security tests: edge. What one user may learn about another (F11), and connections that
//! never finish their request head (F12).

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

/// Reads one HTTP/1.1 response (head and a Content-Length body) from a raw connection.
async fn read_response(conn: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection mid-response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text.into_owned();
            }
        }
    }
}

/// F12: a connection that sends only part of a request head is closed once the head deadline
/// passes, instead of holding a socket (and a task) for ever.
#[tokio::test]
async fn a_partial_request_head_is_cut_off_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| {
        c.header_read_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let mut slow = tokio::net::TcpStream::connect(s.running.addr)
        .await
        .unwrap();
    slow.write_all(b"GET /v2/ HTTP/1.1\r\nHost: egress\r\nX-Slow: ")
        .await
        .unwrap();
    let mut rest = [0u8; 1024];
    // The guard only keeps a regression from hanging the suite; the assertion is the close.
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), slow.read(&mut rest))
        .await
        .expect("the server kept a half-sent request head open");
    match read {
        Ok(0) | Err(_) => {}
        // hyper may answer 408 before closing; then the next read sees the close.
        Ok(n) => {
            let answer = String::from_utf8_lossy(&rest[..n]).to_string();
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            let after =
                tokio::time::timeout(std::time::Duration::from_secs(60), slow.read(&mut rest))
                    .await
                    .expect("closed after the 408");
            assert!(matches!(after, Ok(0) | Err(_)), "{after:?}");
        }
    }
    // A client that sends its head promptly is still served.
    assert_eq!(s.get("", "/v2/").await.status, 200);
}

/// F12: at most `max_connections` connections are served at once; the next one waits until
/// one closes, and is served then.
#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start_with(|c| c.max_connections = 1).await;
    let request = b"GET /v2/ HTTP/1.1\r\nHost: egress\r\n\r\n";
    let mut first = tokio::net::TcpStream::connect(s.running.addr)
        .await
        .unwrap();
    first.write_all(request).await.unwrap();
    assert!(read_response(&mut first).await.starts_with("HTTP/1.1 200"));

    // The kernel completes the second handshake, but the server does not take it up while
    // the first connection holds the only slot.
    let addr = s.running.addr;
    let second = tokio::spawn(async move {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(request).await.unwrap();
        read_response(&mut conn).await
    });
    for _ in 0..20 {
        first.write_all(request).await.unwrap();
        assert!(read_response(&mut first).await.starts_with("HTTP/1.1 200"));
    }
    assert!(
        !second.is_finished(),
        "a connection past the cap was served while the first one was open"
    );
    drop(first);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(60), second)
        .await
        .expect("the waiting connection is served once a slot frees")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// F12: the accept loop still hands each request its peer address, which the rate limiter
/// keys anonymous callers by: one address running out leaves another untouched.
#[tokio::test]
async fn anonymous_callers_are_still_limited_per_address() {
    let s = TestServer::start_with(|c| c.rate_limit = 2).await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let url = format!("{}/v2/user", s.base);
    let one = from([127, 0, 0, 1]);
    for _ in 0..2 {
        assert_eq!(one.get(&url).send().await.unwrap().status(), 401);
    }
    assert_eq!(one.get(&url).send().await.unwrap().status(), 429);
    let two = from([127, 0, 0, 2]);
    assert_eq!(two.get(&url).send().await.unwrap().status(), 401);
}

/// F12: the accept loop keeps the graceful shutdown: once stopping, the server takes no new
/// connection, and a request already being served still gets its answer.
#[tokio::test]
async fn stopping_refuses_new_connections_and_finishes_the_request_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    let token = s.user("alice").await;
    let addr = s.running.addr;
    let body = br#"{"name": "finished during shutdown"}"#;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v2/projects HTTP/1.1\r\nHost: egress\r\nX-SBG-Auth-Token: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // `100 Continue` comes once the handler reads the body: the request is in flight.
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    let stopping = tokio::spawn(s.running.stop());
    let refused = async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), refused)
        .await
        .expect("a stopping server stops accepting");

    conn.write_all(body).await.unwrap();
    let answer = read_response(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("finished during shutdown"), "{answer}");
    tokio::time::timeout(std::time::Duration::from_secs(60), stopping)
        .await
        .expect("the server stops once its last request is answered")
        .unwrap()
        .unwrap();
}

/// Clients that send a write and hang up while it runs: the work finishes (or not) on its own,
/// and writes keep working for everyone. A handler cancelled inside its transaction used to
/// leave a pooled connection mid-transaction, and every later write on it failed with a 500.
#[tokio::test]
async fn clients_that_hang_up_mid_write_leave_writes_working() {
    use tokio::io::AsyncWriteExt;
    let (s, t, root) = TestServer::with_local_root().await;
    let v = s.post(&t, "/v2/storage/volumes", json!({"name": "out", "access_mode": "RW", "service": {"type": "local", "root": root.path()}})).await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(
            s.upload(&t, "ann/p", &format!("f{i}"), b"x").await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let addr = s.base.trim_start_matches("http://").to_string();
    for n in 0..150u64 {
        let items: Vec<_> = ids.iter().map(|f| json!({"source": {"file": f}, "destination": {"volume": "ann/out", "location": format!("gone{n}/{f}")}})).collect();
        let body = json!({ "items": items }).to_string();
        let head = format!("POST /v2/bulk/storage/exports/create?copy_only=true HTTP/1.1\r\nHost: x\r\nX-SBG-Auth-Token: {t}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(body.as_bytes()).await.unwrap();
        // Hang up at varied moments of the server's work on it.
        tokio::time::sleep(std::time::Duration::from_micros(n * 97 % 15_000)).await;
        drop(conn);
    }
    for (n, id) in ids.iter().take(20).enumerate() {
        let probe = s.post(&t, "/v2/bulk/storage/exports/create?copy_only=true", json!({"items": [{"source": {"file": id}, "destination": {"volume": "ann/out", "location": format!("probe{n}")}}]})).await;
        assert_eq!(
            probe.status, 200,
            "write {n} after the hang-ups: {:?}",
            probe.body
        );
        assert_eq!(
            s.post(&t, "/v2/projects", json!({"name": format!("after{n}")}))
                .await
                .status,
            200
        );
    }
}
