//! Security tests: the authorization matrix. Alice owns a project (a file, a folder, an upload in
//! progress), a volume, an export and an import. Bob is no member of anything of hers, carol is
//! a read-only member of the project and the volume, and dave had every right on both and was
//! removed. Every route that reaches alice's things is tried by each of them: an invisible thing
//! answers 404, a visible one without the right 403, and a bulk call one error per item. After
//! the whole matrix, everything alice can see of her state is exactly as before, bytes included.

use crate::common::{bulk_values, TestServer};
use egress_core::volume::{Service, ServiceKind};
use egress_store::VolumeRec;
use reqwest::Method;
use serde_json::{json, Value};

/// What one caller must get from one request.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// A plain SBG error with this status and code.
    Denied(u16, u64),
    /// 200 with one error per item, in order.
    Items(&'static [(u16, u64)]),
    /// A listing that answers but shows none of alice's ids.
    Hidden,
    /// Carol may read: 200. Not counted as a denial.
    Allowed,
    /// Carol may read, but reading needs the volume's endpoint, which this test has not.
    Skip,
}
use Want::*;

const P404: Want = Denied(404, 3002);
const P403: Want = Denied(403, 3001);
const F404: Want = Denied(404, 5002);
const F403: Want = Denied(403, 5001);
const DEST404: Want = Denied(404, 5026);
const U404: Want = Denied(404, 8003);
const V404: Want = Denied(404, 9007);
const V403: Want = Denied(403, 9020);
const J404: Want = Denied(404, 9008);
const UNSIGNED: Want = Denied(403, 90002);

/// Alice's things.
struct Alice {
    project: String,
    file: String,
    folder: String,
    upload: String,
    volume: String,
    export: String,
    import: String,
}

/// The caller's own things, used as the other end of a copy, export or import.
struct Own {
    name: &'static str,
    project: String,
    file: String,
    volume: String,
}

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    /// For bob, carol and dave.
    want: [Want; 3],
}

fn case(
    what: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    want: [Want; 3],
) -> Case {
    Case {
        what,
        method,
        path,
        body,
        want,
    }
}

/// Every request of the matrix, for one caller: one row per request, read as a table.
#[rustfmt::skip]
fn cases(a: &Alice, me: &Own) -> Vec<Case> {
    use Method as M;
    let p = format!("/v2/projects/{}", a.project);
    let f = format!("/v2/files/{}", a.file);
    let d = format!("/v2/files/{}", a.folder);
    let u = format!("/v2/upload/multipart/{}", a.upload);
    let v = format!("/v2/storage/volumes/{}", a.volume);
    let all = json!({"read": true, "copy": true, "write": true, "execute": true, "admin": true});
    let all_vol = json!({"read": true, "copy": true, "write": true, "admin": true});
    let export = |file: &str, volume: &str| json!({"source": {"file": file}, "destination": {"volume": volume, "location": "stolen.txt"}});
    let import_to_project = |volume: &str, project: &str| json!({"source": {"volume": volume, "location": "in/data.txt"}, "destination": {"project": project}});
    let import_to_parent = |volume: &str, parent: &str| json!({"source": {"volume": volume, "location": "in/data.txt"}, "destination": {"parent": parent}});
    let steal_export = export(&a.file, &me.volume);
    let into_alices_volume = export(&me.file, &a.volume);
    let from_alices_volume = import_to_project(&a.volume, &me.project);
    let into_alices_project = import_to_project(&me.volume, &a.project);
    vec![
        // Projects and their members.
        case("get project", M::GET, p.clone(), None, [P404, Allowed, P404]),
        case("rename project", M::PATCH, p.clone(), Some(json!({"name": "pwned"})), [P404, P403, P404]),
        case("change project settings", M::PATCH, p.clone(), Some(json!({"settings": {"locked": false}})), [P404, P403, P404]),
        case("delete project", M::DELETE, p.clone(), None, [P404, P403, P404]),
        case("list project members", M::GET, format!("{p}/members"), None, [P404, Allowed, P404]),
        case("add oneself as project admin", M::POST, format!("{p}/members"), Some(json!({"username": me.name, "permissions": all})), [P404, P403, P404]),
        case("get the owner's membership", M::GET, format!("{p}/members/alice"), None, [P404, Allowed, P404]),
        case("raise one's own project rights", M::PATCH, format!("{p}/members/{}/permissions", me.name), Some(all.clone()), [P404, P403, P404]),
        case("demote the owner", M::PATCH, format!("{p}/members/alice/permissions"), Some(json!({"admin": false, "write": false})), [P404, P403, P404]),
        case("remove the owner", M::DELETE, format!("{p}/members/alice"), None, [P404, P403, P404]),
        case("remove carol", M::DELETE, format!("{p}/members/carol"), None, [P404, P403, P404]),
        case("list all projects", M::GET, "/v2/projects/".into(), None, [Hidden, Allowed, Hidden]),
        case("list alice's projects", M::GET, "/v2/projects/alice".into(), None, [Hidden, Allowed, Hidden]),
        // Files and folders.
        case("get file", M::GET, f.clone(), None, [F404, Allowed, F404]),
        case("rename file", M::PATCH, f.clone(), Some(json!({"name": "pwned.txt"})), [F404, F403, F404]),
        case("tag file through PATCH", M::PATCH, f.clone(), Some(json!({"tags": ["pwned"], "metadata": {"x": "y"}})), [F404, F403, F404]),
        case("get metadata", M::GET, format!("{f}/metadata"), None, [F404, Allowed, F404]),
        case("replace metadata", M::PUT, format!("{f}/metadata"), Some(json!({"x": "y"})), [F404, F403, F404]),
        case("merge metadata", M::PATCH, format!("{f}/metadata"), Some(json!({"x": "y"})), [F404, F403, F404]),
        case("set tags", M::PUT, format!("{f}/tags"), Some(json!(["pwned"])), [F404, F403, F404]),
        case("delete file", M::DELETE, f.clone(), None, [F404, F403, F404]),
        case("copy file into own project", M::POST, format!("{f}/actions/copy"), Some(json!({"project": me.project})), [F404, Denied(403, 5014), F404]),
        case("copy file within alice's project", M::POST, format!("{f}/actions/copy"), Some(json!({"parent": a.folder, "name": "dup.txt"})), [F404, Denied(403, 5014), F404]),
        case("move file into alice's folder", M::POST, format!("{f}/actions/move"), Some(json!({"parent": a.folder})), [F404, Denied(403, 5032), F404]),
        case("download info", M::GET, format!("{f}/download_info"), None, [F404, Allowed, F404]),
        case("list folder", M::GET, format!("{d}/list"), None, [F404, Allowed, F404]),
        case("list project root", M::GET, format!("/v2/files?project={}", a.project), None, [P404, Allowed, P404]),
        case("list by parent", M::GET, format!("/v2/files?parent={}", a.folder), None, [F404, Allowed, F404]),
        case("create folder in project", M::POST, "/v2/files".into(), Some(json!({"name": "evil", "type": "folder", "project": a.project})), [P404, P403, P404]),
        case("create folder in folder", M::POST, "/v2/files".into(), Some(json!({"name": "evil", "type": "folder", "parent": a.folder})), [DEST404, F403, DEST404]),
        case("rename folder", M::PATCH, d.clone(), Some(json!({"name": "pwned"})), [F404, F403, F404]),
        case("delete folder", M::DELETE, d.clone(), None, [F404, F403, F404]),
        case("bulk get", M::POST, "/v2/bulk/files/get".into(), Some(json!({"file_ids": [a.file, a.folder]})), [ Items(&[(404, 5002), (404, 5002)]), Allowed, Items(&[(404, 5002), (404, 5002)]), ]),
        case("bulk delete", M::POST, "/v2/bulk/files/delete".into(), Some(json!({"file_ids": [a.file, a.folder]})), [ Items(&[(404, 5002), (404, 5002)]), Items(&[(403, 5001), (403, 5001)]), Items(&[(404, 5002), (404, 5002)]), ]),
        case("move own file into alice's folder", M::POST, format!("/v2/files/{}/actions/move", me.file), Some(json!({"parent": a.folder})), [DEST404, F403, DEST404]),
        case("copy own file into alice's project", M::POST, format!("/v2/files/{}/actions/copy", me.file), Some(json!({"project": a.project})), [P404, P403, P404]),
        case("copy own file into alice's folder", M::POST, format!("/v2/files/{}/actions/copy", me.file), Some(json!({"parent": a.folder})), [DEST404, F403, DEST404]),
        // Uploads.
        case("start upload in project", M::POST, "/v2/upload/multipart".into(), Some(json!({"project": a.project, "name": "evil.bin", "size": 10})), [P404, P403, P404]),
        case("start overwriting upload in project", M::POST, "/v2/upload/multipart?overwrite=true".into(), Some(json!({"project": a.project, "name": "report.txt", "size": 10})), [P404, P403, P404]),
        case("start upload in folder", M::POST, "/v2/upload/multipart/".into(), Some(json!({"parent": a.folder, "name": "evil.bin", "size": 10})), [DEST404, F403, DEST404]),
        case("get alice's upload", M::GET, u.clone(), None, [U404, U404, U404]),
        case("part URL of alice's upload", M::GET, format!("{u}/part/1"), None, [U404, U404, U404]),
        case("report part of alice's upload", M::POST, format!("{u}/part/"), Some(json!({"part_number": 1, "response": {"headers": {"ETag": "x"}}})), [U404, U404, U404]),
        case("complete alice's upload", M::POST, format!("{u}/complete"), None, [U404, U404, U404]),
        case("abort alice's upload", M::DELETE, u.clone(), None, [U404, U404, U404]),
        // Transfers carry a signature instead of a token.
        case("download without signature", M::GET, format!("/transfer/download/{}", a.file), None, [UNSIGNED; 3]),
        case("download with forged signature", M::GET, format!("/transfer/download/{}?expires=99999999999&signature={}", a.file, "0".repeat(64)), None, [UNSIGNED; 3]),
        case("upload part without signature", M::PUT, format!("/transfer/upload/{}/1", a.upload), None, [UNSIGNED; 3]),
        // Volumes and their members.
        case("get volume", M::GET, v.clone(), None, [V404, Allowed, V404]),
        case("describe volume", M::PATCH, v.clone(), Some(json!({"description": "pwned"})), [V404, V403, V404]),
        case("deactivate volume", M::PATCH, v.clone(), Some(json!({"active": false})), [V404, V403, V404]),
        case("make volume read-only", M::PATCH, v.clone(), Some(json!({"access_mode": "RO"})), [V404, V403, V404]),
        case("re-point volume", M::PATCH, v.clone(), Some(json!({"service": {"bucket": "elsewhere"}})), [V404, V403, V404]),
        case("delete volume", M::DELETE, v.clone(), None, [V404, V403, V404]),
        case("browse volume", M::GET, format!("{v}/list"), None, [V404, Skip, V404]),
        case("volume object", M::GET, format!("{v}/object?location=in/data.txt"), None, [V404, Skip, V404]),
        case("list volume members", M::GET, format!("{v}/members"), None, [V404, Allowed, V404]),
        case("add oneself as volume admin", M::POST, format!("{v}/members"), Some(json!({"username": me.name, "permissions": all_vol})), [V404, V403, V404]),
        case("get the volume owner's membership", M::GET, format!("{v}/members/alice"), None, [V404, Allowed, V404]),
        case("raise one's own volume rights", M::PATCH, format!("{v}/members/{}/permissions", me.name), Some(all_vol.clone()), [V404, V403, V404]),
        case("remove the volume owner", M::DELETE, format!("{v}/members/alice"), None, [V404, V403, V404]),
        case("list volumes", M::GET, "/v2/storage/volumes".into(), None, [Hidden, Allowed, Hidden]),
        // Exports.
        case("export alice's file to own volume", M::POST, "/v2/storage/exports".into(), Some(steal_export.clone()), [F404, Denied(403, 9004), F404]),
        case("copy-export alice's file", M::POST, "/v2/storage/exports?copy_only=True".into(), Some(steal_export.clone()), [F404, Denied(403, 9004), F404]),
        case("export alice's file to her volume", M::POST, "/v2/storage/exports".into(), Some(export(&a.file, &a.volume)), [F404, Denied(403, 9004), F404]),
        case("export own file to alice's volume", M::POST, "/v2/storage/exports".into(), Some(into_alices_volume.clone()), [V404, V403, V404]),
        case("get alice's export", M::GET, format!("/v2/storage/exports/{}", a.export), None, [J404, J404, J404]),
        case("bulk export", M::POST, "/v2/bulk/storage/exports/create?copy_only=False".into(), Some(json!({"items": [steal_export, into_alices_volume]})), [ Items(&[(404, 5002), (404, 9007)]), Items(&[(403, 9004), (403, 9020)]), Items(&[(404, 5002), (404, 9007)]), ]),
        case("bulk get alice's export", M::POST, "/v2/bulk/storage/exports/get".into(), Some(json!({"export_ids": [a.export]})), [Items(&[(404, 9008)]); 3]),
        case("list exports", M::GET, "/v2/storage/exports".into(), None, [Hidden; 3]),
        case("list exports of alice's volume", M::GET, format!("/v2/storage/exports?volume={}", a.volume.replace('/', "%2F")), None, [Hidden; 3]),
        // Imports.
        case("import from alice's volume", M::POST, "/v2/storage/imports".into(), Some(from_alices_volume.clone()), [V404, V403, V404]),
        case("import into alice's project", M::POST, "/v2/storage/imports".into(), Some(into_alices_project.clone()), [P404, P403, P404]),
        case("import into alice's folder", M::POST, "/v2/storage/imports/".into(), Some(import_to_parent(&me.volume, &a.folder)), [DEST404, F403, DEST404]),
        case("get alice's import", M::GET, format!("/v2/storage/imports/{}", a.import), None, [J404, J404, J404]),
        case("bulk import", M::POST, "/v2/bulk/storage/imports/create".into(), Some(json!({"items": [from_alices_volume, into_alices_project]})), [ Items(&[(404, 9007), (404, 3002)]), Items(&[(403, 9020), (403, 3001)]), Items(&[(404, 9007), (404, 3002)]), ]),
        case("bulk get alice's import", M::POST, "/v2/bulk/storage/imports/get".into(), Some(json!({"import_ids": [a.import]})), [Items(&[(404, 9008)]); 3]),
        case("list imports", M::GET, "/v2/storage/imports".into(), None, [Hidden; 3]),
        case("list imports of alice's project", M::GET, format!("/v2/storage/imports?project={}", a.project.replace('/', "%2F")), None, [Hidden; 3]),
        // Platform-wide.
        case("metrics", M::GET, "/metrics".into(), None, [Denied(403, 90002); 3]),
    ]
}

/// An S3 volume written straight into the store: the matrix never reaches a volume's endpoint,
/// so it needs none (and no probe).
async fn volume(s: &TestServer, owner: &str, name: &str) -> String {
    let id = format!("{owner}/{name}");
    let now = egress_core::util::now_ms();
    let record = VolumeRec {
        id: id.clone(),
        owner: owner.into(),
        name: name.into(),
        description: None,
        access_mode: egress_store::AccessMode::Rw,
        active: true,
        service: Service {
            kind: ServiceKind::S3,
            bucket: format!("{name}-bucket"),
            prefix: String::new(),
            endpoint: "http://127.0.0.1:9".into(),
            region: "us-east-1".into(),
            credential_id: format!("AKID{name}"),
            root: String::new(),
            properties: Default::default(),
            ..Default::default()
        },
        secret: s.running.state.secrets.seal("matrix-secret", &id),
        created_at: now,
        modified_at: now,
        uid: egress_core::util::new_long_id(),
    };
    s.running.state.store.create_volume(&record).await.unwrap();
    id
}

async fn ok(s: &TestServer, token: &str, method: Method, path: &str, body: Value) -> Value {
    let r = s.call(method, token, path, Some(body)).await;
    assert!(r.status.is_success(), "{path}: {:?}", r.body);
    r.body
}

/// Everything alice can read of her state, for a before/after comparison.
async fn alice_sees(s: &TestServer, token: &str, a: &Alice) -> Vec<(String, Value)> {
    let paths = [
        format!("/v2/projects/{}", a.project),
        format!("/v2/projects/{}/members", a.project),
        "/v2/projects/".into(),
        format!("/v2/files/{}", a.file),
        format!("/v2/files/{}/metadata", a.file),
        format!("/v2/files/{}", a.folder),
        format!("/v2/files?project={}", a.project),
        format!("/v2/files/{}/list", a.folder),
        format!("/v2/upload/multipart/{}", a.upload),
        format!("/v2/storage/volumes/{}", a.volume),
        format!("/v2/storage/volumes/{}/members", a.volume),
        "/v2/storage/volumes".into(),
        format!("/v2/storage/exports/{}", a.export),
        format!("/v2/storage/imports/{}", a.import),
    ];
    let mut seen = Vec::new();
    for path in paths {
        let r = s.get(token, &path).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        seen.push((path, r.body));
    }
    seen
}

#[tokio::test]
async fn no_outsider_reader_or_removed_member_can_touch_alices_things() {
    // No jobs run: alice's export and import stay PENDING, so her state holds still.
    let s = TestServer::start_with(|c| c.engine.run_jobs = false).await;
    let alice = s.user("alice").await;
    let project = s.project(&alice, "secret-lab").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = b"alice's private report\n".repeat(1000);
    let file = s.upload(&alice, &project, "report.txt", &bytes).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let folder = ok(
        &s,
        &alice,
        Method::POST,
        "/v2/files",
        json!({"name": "results", "type": "folder", "project": project}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let upload = ok(
        &s,
        &alice,
        Method::POST,
        "/v2/upload/multipart",
        json!({"project": project, "name": "pending.bin", "size": 10}),
    )
    .await["upload_id"]
        .as_str()
        .unwrap()
        .to_string();
    let part_url = s
        .get(&alice, &format!("/v2/upload/multipart/{upload}/part/1"))
        .await
        .body["url"]
        .as_str()
        .unwrap()
        .to_string();
    let put = s
        .http
        .put(&part_url)
        .body(vec![7u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let alice_volume = volume(&s, "alice", "alice_vol").await;
    let export = ok(&s, &alice, Method::POST, "/v2/storage/exports?copy_only=True", json!({"source": {"file": file}, "destination": {"volume": alice_volume, "location": "out/report.txt"}})).await;
    assert_eq!(export["state"], "PENDING");
    let import = ok(&s, &alice, Method::POST, "/v2/storage/imports", json!({"source": {"volume": alice_volume, "location": "in/data.txt"}, "destination": {"project": project}})).await;
    assert_eq!(import["state"], "PENDING");
    let a = Alice {
        project: project.clone(),
        file,
        folder,
        upload,
        volume: alice_volume.clone(),
        export: export["id"].as_str().unwrap().to_string(),
        import: import["id"].as_str().unwrap().to_string(),
    };

    // Carol reads; dave had everything, then was removed.
    let project_members = format!("/v2/projects/{project}/members");
    let volume_members = format!("/v2/storage/volumes/{alice_volume}/members");
    let mut callers = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let token = s.user(name).await;
        let own_project = s.project(&token, &format!("{name} own")).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let own_file = s.upload(&token, &own_project, "mine.txt", b"mine").await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let own = Own {
            name,
            project: own_project,
            file: own_file,
            volume: volume(&s, name, &format!("{name}_vol")).await,
        };
        callers.push((token, own));
    }
    let read_only =
        json!({"read": true, "copy": false, "write": false, "execute": false, "admin": false});
    s.add_member(&alice, &project_members, "carol", read_only.clone())
        .await;
    s.add_member(&alice, &volume_members, "carol", json!({"read": true}))
        .await;
    let everything =
        json!({"read": true, "copy": true, "write": true, "execute": true, "admin": true});
    s.add_member(&alice, &project_members, "dave", everything.clone())
        .await;
    s.add_member(&alice, &volume_members, "dave", everything.clone())
        .await;
    // While a member, dave did see everything; then he was removed.
    assert_eq!(
        s.get(&callers[2].0, &format!("/v2/files/{}", a.file))
            .await
            .status,
        200
    );
    for members in [&project_members, &volume_members] {
        let r = s
            .call(Method::DELETE, &alice, &format!("{members}/dave"), None)
            .await;
        assert_eq!(r.status, 204, "{:?}", r.body);
    }

    let before = alice_sees(&s, &alice, &a).await;
    let secret_ids = [
        &a.project, &a.file, &a.folder, &a.upload, &a.volume, &a.export, &a.import,
    ];
    let (mut denied, mut hidden, mut allowed) = (0, 0, 0);
    for (who, (token, own)) in callers.iter().enumerate() {
        for c in cases(&a, own) {
            let want = c.want[who];
            if let Skip = want {
                continue;
            }
            let r = s
                .call(c.method.clone(), token, &c.path, c.body.clone())
                .await;
            let label = format!("{} / {}: {} {}", own.name, c.what, c.method, c.path);
            match want {
                Denied(status, code) => {
                    assert_eq!(r.status.as_u16(), status, "{label}: {:?}", r.body);
                    assert_eq!(r.body["status"], status, "{label}: {:?}", r.body);
                    assert_eq!(r.body["code"], code, "{label}: {:?}", r.body);
                    denied += 1;
                }
                Items(errors) => {
                    assert_eq!(r.status, 200, "{label}: {:?}", r.body);
                    let got: Vec<(Value, Value)> = bulk_values(&r.body, "/error/status")
                        .into_iter()
                        .zip(bulk_values(&r.body, "/error/code"))
                        .collect();
                    let expected: Vec<(Value, Value)> =
                        errors.iter().map(|(s, c)| (json!(s), json!(c))).collect();
                    assert_eq!(got, expected, "{label}: {:?}", r.body);
                    assert!(
                        bulk_values(&r.body, "/resource").iter().all(Value::is_null),
                        "{label}: {:?}",
                        r.body
                    );
                    denied += 1;
                }
                Hidden => {
                    assert_eq!(r.status, 200, "{label}: {:?}", r.body);
                    let text = r.body.to_string();
                    for id in secret_ids {
                        assert!(!text.contains(id.as_str()), "{label} shows {id}: {text}");
                    }
                    hidden += 1;
                }
                Allowed => {
                    assert_eq!(r.status, 200, "{label}: {:?}", r.body);
                    allowed += 1;
                }
                Skip => unreachable!(),
            }
        }
    }
    assert!(denied >= 60, "only {denied} denials were tried");
    assert!(hidden > 0 && allowed > 0);

    // Nothing of alice's moved: every view of hers, and the bytes of her file.
    let after = alice_sees(&s, &alice, &a).await;
    for ((path, was), (_, is)) in before.iter().zip(&after) {
        assert_eq!(was, is, "{path} changed");
    }
    let download = s.download(&alice, &a.file, None).await;
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), &bytes[..]);
    let names: Vec<String> = after
        .iter()
        .find(|(p, _)| p.starts_with("/v2/files?project="))
        .unwrap()
        .1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["report.txt", "results"]);
    let members: Vec<String> = after[1].1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members.contains(&"alice".to_string()) && members.contains(&"carol".to_string()));
}
