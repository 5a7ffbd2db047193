//! The backend-agnostic store suite: every case runs on SQLite and on Postgres.

use super::*;
use egress_core::util::now_ms;

/// Runs each case twice: `sqlite_<case>` and `postgres_<case>`.
macro_rules! both_engines {
    ($($case:ident),* $(,)?) => {
        mod sqlite_engine {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$case(crate::testdb::sqlite(dir.path()).await).await;
                }
            )*
        }
        mod postgres_engine {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(store) = crate::testdb::postgres().await {
                        super::$case(store).await;
                    }
                }
            )*
        }
    };
}

both_engines!(
    users_and_tokens,
    projects_members_and_listing,
    folders_names_and_filters,
    blobs_are_freed_only_after_the_last_reference,
    uploads_complete_and_expire,
    deleting_a_project_releases_its_blobs,
    export_claims_are_leased_fenced_and_ordered,
    moves_commit_the_alias_flip_atomically,
    group_commits_record_each_end_on_its_own,
    moving_exports_are_found_in_one_query,
    claims_share_workers_among_groups,
    moves_are_stored_and_keep_the_tree_whole,
    files_go_only_into_folders_that_exist,
    scrolling_walks_every_child_once_in_list_order,
    file_jobs_are_leased_fenced_and_done_once,
    file_job_moves_merge_folders_and_cross_projects,
);

fn user(name: &str) -> User {
    User {
        username: name.into(),
        email: format!("{name}@x"),
        is_admin: false,
        created_at: now_ms(),
    }
}

fn project(owner: &str, slug: &str) -> (Project, FileRec) {
    let id = format!("{owner}/{slug}");
    let root = FileRec::new(&id, None, &id, true);
    let p = Project {
        id: id.clone(),
        owner: owner.into(),
        name: slug.into(),
        description: None,
        billing_group: uuid::Uuid::new_v4().to_string(),
        category: "PRIVATE".into(),
        tags: vec!["t".into()],
        settings: serde_json::json!({"locked": false}),
        root_folder: root.id.clone(),
        is_public: false,
        created_by: owner.into(),
        created_at: now_ms(),
        modified_at: now_ms(),
    };
    (p, root)
}

async fn make_project(store: &DynStore, owner: &str, slug: &str) -> (Project, FileRec) {
    let (p, root) = project(owner, slug);
    store.create_project(&p, &root).await.unwrap();
    (p, root)
}

/// The identity the suite's volumes get: derived from the id, so jobs can name it.
fn uid_of(volume: &str) -> String {
    format!("uid-{volume}")
}

/// A volume `owner/name` (its owner becomes its member), so that job ends pass the rights
/// check of their commit.
async fn make_volume(store: &DynStore, id: &str) {
    let (owner, name) = id.split_once('/').unwrap();
    let now = now_ms();
    let v = VolumeRec {
        id: id.into(),
        owner: owner.into(),
        name: name.into(),
        description: None,
        access_mode: AccessMode::Rw,
        active: true,
        service: egress_core::volume::Service {
            kind: egress_core::volume::ServiceKind::S3,
            bucket: "b".into(),
            prefix: String::new(),
            endpoint: String::new(),
            region: String::new(),
            credential_id: String::new(),
            root: String::new(),
            properties: Default::default(),
            ..Default::default()
        },
        secret: vec![],
        created_at: now,
        modified_at: now,
        uid: uid_of(id),
    };
    store.create_volume(&v).await.unwrap();
}

/// A blob with one file holding it, committed the way an upload commits.
async fn add_blob_file(
    store: &DynStore,
    parent: &FileRec,
    name: &str,
    size: i64,
) -> (Blob, FileRec) {
    let blob = Blob {
        id: egress_core::util::random_hex(8),
        size,
        md5: "m".into(),
        crc32c: "c".into(),
    };
    let mut f = FileRec::new(&parent.project_id, Some(&parent.id), name, false);
    f.size = Some(size);
    f.blob_id = Some(blob.id.clone());
    f.md5 = Some(blob.md5.clone());
    f.crc32c = Some(blob.crc32c.clone());
    store.complete_upload(None, &blob, &f, None).await.unwrap();
    (blob, f)
}

async fn users_and_tokens(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    assert!(matches!(
        store.create_user(&user("ann"), "h2").await,
        Err(StoreError::Conflict)
    ));
    assert!(
        matches!(
            store.create_user(&user("bob"), "h1").await,
            Err(StoreError::Conflict)
        ),
        "token hashes are unique"
    );
    assert!(
        store.get_user("bob").await.unwrap().is_none(),
        "a failed create leaves no user behind"
    );
    assert_eq!(
        store.user_by_token("h1").await.unwrap().unwrap().username,
        "ann"
    );
    assert!(store.user_by_token("nope").await.unwrap().is_none());
    store.add_token("ann", "h3").await.unwrap();
    assert_eq!(
        store.user_by_token("h3").await.unwrap().unwrap().username,
        "ann"
    );
    assert!(matches!(
        store.add_token("nobody", "h4").await,
        Err(StoreError::NotFound)
    ));
}

async fn projects_members_and_listing(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    store.create_user(&user("bob"), "h2").await.unwrap();
    let (p1, root) = make_project(&store, "ann", "one").await;
    make_project(&store, "ann", "two").await;
    make_project(&store, "bob", "three").await;
    let (dup, dup_root) = project("ann", "one");
    assert!(matches!(
        store.create_project(&dup, &dup_root).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        store.get_file(&dup_root.id).await.unwrap().is_none(),
        "the failed create left no root folder"
    );

    let got = store.get_project("ann/one").await.unwrap().unwrap();
    assert_eq!(
        (got.root_folder.as_str(), got.tags.clone()),
        (root.id.as_str(), vec!["t".to_string()])
    );
    assert_eq!(got.settings["locked"], false);

    let page = Page {
        offset: 0,
        limit: 1,
    };
    let (items, total) = store
        .list_projects("ann", None, &ProjectFilter::default(), page)
        .await
        .unwrap();
    assert_eq!((items.len(), total), (1, 2));
    let (items, total) = store
        .list_projects(
            "ann",
            None,
            &ProjectFilter::default(),
            Page {
                offset: 1,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!((items[0].id.as_str(), total), ("ann/two", 2));
    assert_eq!(
        store
            .list_projects(
                "ann",
                Some("bob"),
                &ProjectFilter::default(),
                Page {
                    offset: 0,
                    limit: 10
                }
            )
            .await
            .unwrap()
            .1,
        0
    );
    assert_eq!(
        store
            .list_projects(
                "ann",
                None,
                &ProjectFilter {
                    name: Some("two".into()),
                    public: vec![false],
                    tags: vec![]
                },
                Page {
                    offset: 0,
                    limit: 10
                }
            )
            .await
            .unwrap()
            .1,
        1
    );
    let ten = Page {
        offset: 0,
        limit: 10,
    };
    let tagged = ProjectFilter {
        tags: vec!["t".into(), "zz".into()],
        ..Default::default()
    };
    let (items, total) = store
        .list_projects("ann", None, &tagged, ten)
        .await
        .unwrap();
    assert_eq!((items.len(), total), (2, 2), "both carry the tag t");
    let untagged = ProjectFilter {
        tags: vec!["zz".into()],
        ..Default::default()
    };
    assert_eq!(
        store
            .list_projects("ann", None, &untagged, ten)
            .await
            .unwrap()
            .1,
        0
    );
    let public = ProjectFilter {
        public: vec![true],
        ..Default::default()
    };
    assert_eq!(
        store
            .list_projects("ann", None, &public, ten)
            .await
            .unwrap()
            .1,
        0
    );

    let owner = store
        .get_member(MemberKind::Project, "ann/one", "ann")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.perms, Perms::ALL);
    let reader = Member {
        kind: MemberKind::Project,
        resource_id: "ann/one".into(),
        username: "bob".into(),
        perms: Perms {
            read: true,
            ..Perms::default()
        },
    };
    store.put_member(&reader).await.unwrap();
    let mut writer = reader.clone();
    writer.perms.write = true;
    store.put_member(&writer).await.unwrap();
    assert_eq!(
        store
            .get_member(MemberKind::Project, "ann/one", "bob")
            .await
            .unwrap()
            .unwrap()
            .perms,
        writer.perms
    );
    assert!(
        store
            .get_member(MemberKind::Volume, "ann/one", "bob")
            .await
            .unwrap()
            .is_none(),
        "kinds do not mix"
    );
    assert_eq!(
        store
            .list_members(
                MemberKind::Project,
                "ann/one",
                Page {
                    offset: 0,
                    limit: 10
                }
            )
            .await
            .unwrap()
            .1,
        2
    );
    assert_eq!(
        store
            .list_projects(
                "bob",
                None,
                &ProjectFilter::default(),
                Page {
                    offset: 0,
                    limit: 10
                }
            )
            .await
            .unwrap()
            .1,
        2
    );
    assert!(store
        .delete_member(MemberKind::Project, "ann/one", "bob")
        .await
        .unwrap());
    assert!(!store
        .delete_member(MemberKind::Project, "ann/one", "bob")
        .await
        .unwrap());

    let mut changed = p1.clone();
    changed.name = "renamed".into();
    changed.is_public = true;
    store.update_project(&changed).await.unwrap();
    let got = store.get_project("ann/one").await.unwrap().unwrap();
    assert_eq!((got.name.as_str(), got.is_public), ("renamed", true));
    let (ghost, _) = project("ann", "ghost");
    assert!(matches!(
        store.update_project(&ghost).await,
        Err(StoreError::NotFound)
    ));
}

async fn folders_names_and_filters(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    let (_, root) = make_project(&store, "ann", "p").await;
    let folder = FileRec::new("ann/p", Some(&root.id), "dir", true);
    store.create_file(&folder).await.unwrap();
    let again = FileRec::new("ann/p", Some(&root.id), "dir", true);
    assert!(matches!(
        store.create_file(&again).await,
        Err(StoreError::Conflict)
    ));

    let (_, mut a) = add_blob_file(&store, &root, "a.txt", 3).await;
    let (_, b) = add_blob_file(&store, &root, "b.vcf", 4).await;
    add_blob_file(&store, &folder, "a.txt", 5).await;
    a.tags = vec!["red".into(), "blue".into()];
    a.metadata.insert("sample".into(), serde_json::json!("s1"));
    store.update_file(&a).await.unwrap();
    let got = store.get_file(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (got.tags.clone(), got.metadata["sample"].clone()),
        (a.tags.clone(), serde_json::json!("s1"))
    );
    assert_eq!(
        (got.md5.as_deref(), got.crc32c.as_deref()),
        (Some("m"), Some("c")),
        "checksums are stored with the file"
    );

    let all = Page {
        offset: 0,
        limit: 100,
    };
    let (items, total) = store
        .list_children(&root.id, &FileFilter::default(), all)
        .await
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        items.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["dir", "a.txt", "b.vcf"]
    );
    let by_name = FileFilter {
        names: vec!["b.vcf".into(), "zzz".into()],
        tags: vec![],
        ..Default::default()
    };
    assert_eq!(
        store
            .list_children(&root.id, &by_name, all)
            .await
            .unwrap()
            .1,
        1
    );
    let by_tag = FileFilter {
        names: vec![],
        tags: vec!["blue".into(), "green".into()],
        ..Default::default()
    };
    let (tagged, n) = store.list_children(&root.id, &by_tag, all).await.unwrap();
    assert_eq!((n, tagged[0].id.as_str()), (1, a.id.as_str()));
    let mut b_numbered = b.clone();
    b_numbered
        .metadata
        .insert("sample".into(), serde_json::json!(1));
    b_numbered
        .metadata
        .insert("lane".into(), serde_json::json!("s1"));
    store.update_file(&b_numbered).await.unwrap();
    let by_metadata = |pairs: &[(&str, &[&str])]| FileFilter {
        metadata: pairs
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect(),
        ..Default::default()
    };
    for (pairs, expected) in [
        (&[("sample", &["s1"][..])][..], vec![a.id.as_str()]),
        (&[("sample", &["s1", "zz"][..])][..], vec![a.id.as_str()]),
        (&[("sample", &["1"][..])][..], vec![]),
        (&[("lane", &["s1"][..])][..], vec![b.id.as_str()]),
        (
            &[("sample", &["s1"][..]), ("lane", &["s1"][..])][..],
            vec![],
        ),
        (&[("nope", &["s1"][..])][..], vec![]),
    ] {
        let (found, n) = store
            .list_children(&root.id, &by_metadata(pairs), all)
            .await
            .unwrap();
        let ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            (ids, n),
            (expected.clone(), expected.len() as i64),
            "{pairs:?}"
        );
    }
    let by_origin = FileFilter {
        origin: vec![("task".into(), vec!["t".into()])],
        ..Default::default()
    };
    assert_eq!(
        store
            .list_children(&root.id, &by_origin, all)
            .await
            .unwrap()
            .1,
        0
    );
    let (page, n) = store
        .list_children(
            &root.id,
            &FileFilter::default(),
            Page {
                offset: 2,
                limit: 5,
            },
        )
        .await
        .unwrap();
    assert_eq!((page.len(), n), (1, 3));

    let mut clash = b.clone();
    clash.name = "a.txt".into();
    assert!(matches!(
        store.update_file(&clash).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.delete_file(&folder.id).await,
        Err(StoreError::NotEmpty)
    ));
    assert!(matches!(
        store.delete_file("missing").await,
        Err(StoreError::NotFound)
    ));
}

async fn scrolling_walks_every_child_once_in_list_order(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    let (_, root) = make_project(&store, "ann", "p").await;
    let (_, other_root) = make_project(&store, "ann", "q").await;
    for name in ["z-dir", "a-dir", "B-dir"] {
        let folder = FileRec::new("ann/p", Some(&root.id), name, true);
        store.create_file(&folder).await.unwrap();
    }
    for name in [
        "b.txt", "a.txt", "A.txt", "a b.txt", "ü.txt", "c.txt", "a.txt2",
    ] {
        add_blob_file(&store, &root, name, 1).await;
    }
    add_blob_file(&store, &other_root, "a.txt", 1).await;
    let all = Page {
        offset: 0,
        limit: 100,
    };
    let (listed, total) = store
        .list_children(&root.id, &FileFilter::default(), all)
        .await
        .unwrap();
    assert_eq!(total, 10);
    for limit in [1, 3, 4, 10, 11] {
        let mut seen: Vec<FileRec> = Vec::new();
        let mut after: Option<ChildKey> = None;
        loop {
            let (page, n) = store
                .scroll_children(&root.id, &FileFilter::default(), after.as_ref(), limit)
                .await
                .unwrap();
            assert_eq!(n, 10, "the total of the whole listing");
            assert!(page.len() as i64 <= limit);
            if page.is_empty() {
                break;
            }
            after = Some(ChildKey::of(page.last().unwrap()));
            seen.extend(page);
        }
        assert_eq!(
            seen.iter().map(|f| &f.id).collect::<Vec<_>>(),
            listed.iter().map(|f| &f.id).collect::<Vec<_>>(),
            "limit {limit}: the same children in the same order as the offset listing"
        );
    }
    // Filters apply to every page, and the total counts only what passes them.
    let txt = FileFilter {
        names: vec!["a.txt".into(), "c.txt".into(), "z-dir".into()],
        ..Default::default()
    };
    let (first, n) = store
        .scroll_children(&root.id, &txt, None, 2)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let names: Vec<&str> = first.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["z-dir", "a.txt"], "folders first");
    let (rest, _) = store
        .scroll_children(&root.id, &txt, Some(&ChildKey::of(&first[1])), 2)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["c.txt"]
    );
    // A position no child holds (here: just before the sixth child, whose id sorts after the
    // empty one) continues with the next child that sorts after it.
    let between = ChildKey {
        id: String::new(),
        ..ChildKey::of(&listed[5])
    };
    let (after_gap, _) = store
        .scroll_children(&root.id, &FileFilter::default(), Some(&between), 100)
        .await
        .unwrap();
    assert_eq!(
        after_gap.iter().map(|f| &f.id).collect::<Vec<_>>(),
        listed[5..].iter().map(|f| &f.id).collect::<Vec<_>>()
    );
}

async fn blobs_are_freed_only_after_the_last_reference(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    let (_, root) = make_project(&store, "ann", "p").await;
    let (_, other_root) = make_project(&store, "ann", "q").await;
    let (blob, original) = add_blob_file(&store, &root, "a.txt", 3).await;
    let mut copy = FileRec::new("ann/q", Some(&other_root.id), "a.txt", false);
    copy.size = Some(3);
    copy.blob_id = Some(blob.id.clone());
    store.create_file(&copy).await.unwrap();

    store.delete_file(&original.id).await.unwrap();
    assert!(
        store.doomed_blobs(10).await.unwrap().is_empty(),
        "the copy still holds the bytes"
    );
    assert_eq!(
        store.platform_bytes().await.unwrap(),
        vec![("ann/q".to_string(), 3)]
    );
    store.delete_file(&copy.id).await.unwrap();
    assert_eq!(store.doomed_blobs(10).await.unwrap(), vec![blob.id.clone()]);
    assert_eq!(
        store.doomed_blobs(10).await.unwrap(),
        vec![blob.id.clone()],
        "doomed until forgotten"
    );

    let mut late = FileRec::new("ann/q", Some(&other_root.id), "late.txt", false);
    late.blob_id = Some(blob.id.clone());
    assert!(
        matches!(store.create_file(&late).await, Err(StoreError::NotFound)),
        "a doomed blob cannot be shared again"
    );
    store
        .forget_blobs(std::slice::from_ref(&blob.id))
        .await
        .unwrap();
    assert!(store.doomed_blobs(10).await.unwrap().is_empty());
}

async fn uploads_complete_and_expire(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    let (_, root) = make_project(&store, "ann", "p").await;
    let (old_blob, old) = add_blob_file(&store, &root, "f.txt", 1).await;
    let now = now_ms();
    let upload = Upload {
        id: "up1".into(),
        owner: "ann".into(),
        project_id: "ann/p".into(),
        parent_id: root.id.clone(),
        name: "f.txt".into(),
        size: 10,
        part_size: 5,
        overwrite: true,
        created_at: now,
        expires_at: now + 60_000,
    };
    store.create_upload(&upload).await.unwrap();
    let part = |n, etag: &str| Part {
        part_number: n,
        size: 5,
        etag: etag.into(),
    };
    assert!(store
        .put_part("up1", &part(2, "x"), now + 60_000)
        .await
        .unwrap());
    assert!(store
        .put_part("up1", &part(1, "y"), now + 60_000)
        .await
        .unwrap());
    assert!(
        store
            .put_part("up1", &part(1, "z"), now + 60_000)
            .await
            .unwrap(),
        "a part may be sent again"
    );
    assert!(!store.put_part("nope", &part(1, "z"), now).await.unwrap());
    let parts = store.list_parts("up1").await.unwrap();
    assert_eq!(
        parts
            .iter()
            .map(|p| (p.part_number, p.etag.as_str()))
            .collect::<Vec<_>>(),
        [(1, "z"), (2, "x")]
    );
    assert!(store
        .expired_uploads(now + 30_000, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.expired_uploads(now + 61_000, 10).await.unwrap()[0].id,
        "up1"
    );

    let blob = Blob {
        id: "up1".into(),
        size: 10,
        md5: "m".into(),
        crc32c: "c".into(),
    };
    let mut file = FileRec::new("ann/p", Some(&root.id), "f.txt", false);
    file.blob_id = Some("up1".into());
    store
        .complete_upload(Some("up1"), &blob, &file, Some(&old.id))
        .await
        .unwrap();
    assert!(store.get_upload("up1").await.unwrap().is_none());
    assert!(store.list_parts("up1").await.unwrap().is_empty());
    assert!(
        store.get_file(&old.id).await.unwrap().is_none(),
        "overwrite replaced the old file"
    );
    assert_eq!(
        store.doomed_blobs(10).await.unwrap(),
        vec![old_blob.id],
        "its bytes await the sweeper"
    );
    let retry = FileRec::new("ann/p", Some(&root.id), "g.txt", false);
    assert!(matches!(
        store
            .complete_upload(Some("up1"), &blob, &retry, None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(store.get_file(&retry.id).await.unwrap().is_none());

    store
        .create_upload(&Upload {
            id: "up2".into(),
            ..upload.clone()
        })
        .await
        .unwrap();
    assert!(store.delete_upload("up2").await.unwrap());
    assert!(!store.delete_upload("up2").await.unwrap());
}

async fn deleting_a_project_releases_its_blobs(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    let (_, root) = make_project(&store, "ann", "p").await;
    let (_, keep_root) = make_project(&store, "ann", "keep").await;
    let (shared, f) = add_blob_file(&store, &root, "a", 1).await;
    let mut twin = FileRec::new("ann/p", Some(&root.id), "b", false);
    twin.blob_id = Some(shared.id.clone());
    store.create_file(&twin).await.unwrap();
    let (only, _) = add_blob_file(&store, &root, "c", 1).await;
    let mut kept = FileRec::new("ann/keep", Some(&keep_root.id), "a", false);
    kept.blob_id = f.blob_id.clone();
    store.create_file(&kept).await.unwrap();

    store.delete_project("ann/p").await.unwrap();
    assert!(store.get_project("ann/p").await.unwrap().is_none());
    assert!(store.get_file(&root.id).await.unwrap().is_none());
    assert!(store
        .get_member(MemberKind::Project, "ann/p", "ann")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.doomed_blobs(10).await.unwrap(),
        vec![only.id],
        "the shared blob is still held by ann/keep"
    );
    assert!(matches!(
        store.delete_project("ann/p").await,
        Err(StoreError::NotFound)
    ));
}

/// Records one job's end: false when the lease was lost, `NotFound` when a move's file changed.
async fn finish(
    store: &DynStore,
    id: &str,
    attempt: i64,
    end: &JobEnd,
) -> Result<bool, StoreError> {
    match store.finish_exports(&[(id, attempt, end)]).await?[..] {
        [Finished::Recorded] => Ok(true),
        [Finished::LeaseLost] => Ok(false),
        _ => Err(StoreError::NotFound),
    }
}

fn job(id: &str, owner: &str, file: &FileRec, volume: &str, key: &str) -> ExportRec {
    ExportRec {
        seq: 0,
        id: id.into(),
        owner: owner.into(),
        file_id: file.id.clone(),
        volume_id: volume.into(),
        volume_uid: uid_of(volume),
        location: key.into(),
        object_key: key.into(),
        properties: serde_json::Map::new(),
        overwrite: false,
        copy_only: false,
        state: JobState::Pending,
        error: None,
        attempt: 0,
        lease_owner: None,
        lease_expires_at: 0,
        next_attempt_at: 0,
        upload_id: None,
        bytes_total: file.size.unwrap_or(0),
        bytes_copied: 0,
        created_at: now_ms(),
        started_at: None,
        finished_at: None,
    }
}

async fn export_claims_are_leased_fenced_and_ordered(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    make_volume(&store, "ann/v").await;
    let (_, root) = make_project(&store, "ann", "p").await;
    let (_, a) = add_blob_file(&store, &root, "a", 1).await;
    let (_, b) = add_blob_file(&store, &root, "b", 1).await;
    let (_, c) = add_blob_file(&store, &root, "c", 1).await;
    // Two jobs aim at the same key: the second must wait for the first (invariant 5).
    let jobs = [
        job("j1", "ann", &a, "ann/v", "same"),
        job("j2", "ann", &b, "ann/v", "same"),
        job("j3", "ann", &c, "ann/v", "other"),
    ];
    store.insert_exports(&jobs, None).await.unwrap();
    assert_eq!(
        store.moving_export(&a.id).await.unwrap().as_deref(),
        Some("j1")
    );

    let now = now_ms();
    let claimed = store
        .claim_exports("ann", "ann/v", "n1", now, now + 1000, 10)
        .await
        .unwrap();
    let mut ids: Vec<&str> = claimed.iter().map(|j| j.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["j1", "j3"], "j2 waits behind j1");
    assert!(claimed.iter().all(|j| j.attempt == 1
        && j.state == JobState::Running
        && j.lease_owner.as_deref() == Some("n1")));
    assert!(
        store
            .claim_exports("ann", "ann/v", "n2", now, now + 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased jobs are not claimed twice"
    );
    let copied = JobEnd::Completed {
        bytes: 1,
        alias: None,
    };
    assert!(finish(&store, "j3", 1, &copied).await.unwrap());

    // A lease that expires lets another worker take the job; the old attempt is fenced out.
    let later = now + 2000;
    assert!(
        store
            .claim_exports("ann", "ann/v", "n2", later, later + 1000, 1)
            .await
            .unwrap()
            .is_empty(),
        "an expired lease is not taken before it is put back in the queue"
    );
    assert_eq!(
        store.expire_leases(now + 500).await.unwrap(),
        0,
        "leases still valid stay"
    );
    assert_eq!(store.expire_leases(later).await.unwrap(), 1);
    assert!(
        !store.renew_export("j1", 1, later + 5000).await.unwrap(),
        "an expired lease cannot be renewed"
    );
    let retaken = store
        .claim_exports("ann", "ann/v", "n2", later, later + 1000, 1)
        .await
        .unwrap();
    assert_eq!((retaken[0].id.as_str(), retaken[0].attempt), ("j1", 2));
    assert!(
        !store.renew_export("j1", 1, later + 5000).await.unwrap(),
        "the old attempt lost its lease"
    );
    assert!(!store.set_export_progress("j1", 1, 1).await.unwrap());
    let done = JobEnd::Completed {
        bytes: 1,
        alias: None,
    };
    assert!(
        !finish(&store, "j1", 1, &done).await.unwrap(),
        "a fenced-out worker cannot finish the job"
    );
    assert!(store.renew_export("j1", 2, later + 5000).await.unwrap());
    assert!(finish(&store, "j1", 2, &done).await.unwrap());
    assert_eq!(
        store.get_export("j1").await.unwrap().unwrap().state,
        JobState::Completed
    );

    let next = store
        .claim_exports("ann", "ann/v", "n2", later, later + 1000, 10)
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["j2"],
        "j2 runs once j1 has ended"
    );
    let retry = JobEnd::Retry {
        at: later + 10_000,
        error: serde_json::json!({"code": 9000}),
    };
    assert!(finish(&store, "j2", 1, &retry).await.unwrap());
    assert!(
        store
            .claim_exports("ann", "ann/v", "n2", later, later + 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "backoff holds the retry"
    );
    let again = store
        .claim_exports("ann", "ann/v", "n2", later + 10_000, later + 11_000, 10)
        .await
        .unwrap();
    assert_eq!((again[0].id.as_str(), again[0].attempt), ("j2", 2));
    let failed = JobEnd::Failed {
        error: serde_json::json!({"status": 409, "code": 9107}),
    };
    assert!(finish(&store, "j2", 2, &failed).await.unwrap());
    let j2 = store.get_export("j2").await.unwrap().unwrap();
    assert_eq!(
        (j2.state, j2.error.unwrap().0["code"].clone()),
        (JobState::Failed, serde_json::json!(9107))
    );

    let (listed, total) = store
        .list_exports(
            "ann",
            Some("ann/v"),
            &[JobState::Completed, JobState::Failed],
            Page {
                offset: 0,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!((total, listed.len()), (3, 3));
    let ended = [JobState::Completed, JobState::Failed];
    let page = |offset| Page { offset, limit: 10 };
    let (last, total) = store
        .list_exports("ann", Some("ann/v"), &ended, page(2))
        .await
        .unwrap();
    assert_eq!((total, last.len()), (3, 1));
    let (past_the_end, total) = store
        .list_exports("ann", Some("ann/v"), &ended, page(3))
        .await
        .unwrap();
    assert_eq!(
        (total, past_the_end.len()),
        (3, 0),
        "a page past the end is empty, with the total"
    );
    assert_eq!(
        store
            .list_exports(
                "bob",
                None,
                &[],
                Page {
                    offset: 0,
                    limit: 10
                }
            )
            .await
            .unwrap()
            .1,
        0
    );
}

async fn moves_commit_the_alias_flip_atomically(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    make_volume(&store, "ann/v").await;
    let (_, root) = make_project(&store, "ann", "p").await;
    let (blob, f) = add_blob_file(&store, &root, "a", 3).await;
    store
        .insert_exports(&[job("m1", "ann", &f, "ann/v", "k")], None)
        .await
        .unwrap();
    assert!(
        matches!(store.delete_file(&f.id).await, Err(StoreError::InUse)),
        "a file being moved cannot be deleted"
    );
    let now = now_ms();
    store
        .claim_exports("ann", "ann/v", "n1", now, now + 1000, 1)
        .await
        .unwrap();
    let alias = Alias {
        file_id: f.id.clone(),
        blob_id: blob.id.clone(),
        volume_id: "ann/v".into(),
        volume_uid: uid_of("ann/v"),
        location: "k".into(),
    };
    let end = JobEnd::Completed {
        bytes: 3,
        alias: Some(alias.clone()),
    };
    assert!(finish(&store, "m1", 1, &end).await.unwrap());
    let moved = store.get_file(&f.id).await.unwrap().unwrap();
    assert_eq!(
        (
            moved.blob_id,
            moved.volume_id.as_deref(),
            moved.location.as_deref()
        ),
        (None, Some("ann/v"), Some("k"))
    );
    assert_eq!(
        moved.md5.as_deref(),
        Some("m"),
        "the alias keeps its checksum"
    );
    assert_eq!(
        store.doomed_blobs(10).await.unwrap(),
        vec![blob.id.clone()],
        "the platform bytes await the sweeper"
    );

    // A second move of a file whose blob is gone must not flip anything (fenced on the blob).
    let (blob2, g) = add_blob_file(&store, &root, "g", 3).await;
    store
        .insert_exports(&[job("m2", "ann", &g, "ann/v", "k2")], None)
        .await
        .unwrap();
    store
        .claim_exports("ann", "ann/v", "n1", now, now + 1000, 1)
        .await
        .unwrap();
    let stale = Alias {
        file_id: g.id.clone(),
        blob_id: "not-its-blob".into(),
        volume_id: "ann/v".into(),
        volume_uid: uid_of("ann/v"),
        location: "k2".into(),
    };
    let result = finish(
        &store,
        "m2",
        1,
        &JobEnd::Completed {
            bytes: 3,
            alias: Some(stale),
        },
    )
    .await;
    assert!(matches!(result, Err(StoreError::NotFound)));
    assert_eq!(
        store.get_export("m2").await.unwrap().unwrap().state,
        JobState::Running,
        "the failed commit changed nothing"
    );
    assert_eq!(
        store.get_file(&g.id).await.unwrap().unwrap().blob_id,
        Some(blob2.id)
    );
}

async fn claims_share_workers_among_groups(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    make_volume(&store, "ann/v").await;
    let (_, root) = make_project(&store, "ann", "p").await;
    let (_, f) = add_blob_file(&store, &root, "a", 1).await;
    let mut jobs = Vec::new();
    for i in 0..5 {
        jobs.push(job(
            &format!("ann{i}"),
            "ann",
            &f,
            "ann/v",
            &format!("k{i}"),
        ));
    }
    jobs.push(job("bob0", "bob", &f, "bob/v", "k"));
    let mut copies = jobs.clone();
    for j in &mut copies {
        j.copy_only = true;
    }
    store.insert_exports(&copies, None).await.unwrap();
    let groups = store.runnable_export_groups(now_ms(), 10).await.unwrap();
    assert_eq!(
        groups,
        vec![
            ("ann".to_string(), "ann/v".to_string()),
            ("bob".to_string(), "bob/v".to_string())
        ]
    );
    let now = now_ms();
    assert_eq!(
        store
            .claim_exports("bob", "bob/v", "n", now, now + 1000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.runnable_export_groups(now, 10).await.unwrap().len(),
        1,
        "bob has nothing left to run"
    );
}

async fn group_commits_record_each_end_on_its_own(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    make_volume(&store, "ann/v").await;
    let (_, root) = make_project(&store, "ann", "p").await;
    let (blob_a, a) = add_blob_file(&store, &root, "a", 3).await;
    let (_, b) = add_blob_file(&store, &root, "b", 3).await;
    let (blob_c, c) = add_blob_file(&store, &root, "c", 3).await;
    let jobs = [
        job("ga", "ann", &a, "ann/v", "ka"),
        job("gb", "ann", &b, "ann/v", "kb"),
        job("gc", "ann", &c, "ann/v", "kc"),
        job("gd", "ann", &c, "ann/v", "kd"),
    ];
    store.insert_exports(&jobs, None).await.unwrap();
    let now = now_ms();
    let claimed = store
        .claim_exports("ann", "ann/v", "n1", now, now + 1000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    let alias = |f: &FileRec, blob: &str, key: &str| Alias {
        file_id: f.id.clone(),
        blob_id: blob.into(),
        volume_id: "ann/v".into(),
        volume_uid: uid_of("ann/v"),
        location: key.into(),
    };
    let moved = JobEnd::Completed {
        bytes: 3,
        alias: Some(alias(&a, &blob_a.id, "ka")),
    };
    let stale = JobEnd::Completed {
        bytes: 3,
        alias: Some(alias(&b, "not-its-blob", "kb")),
    };
    let fenced_out = JobEnd::Completed {
        bytes: 3,
        alias: Some(alias(&c, &blob_c.id, "kc")),
    };
    let failed = JobEnd::Failed {
        error: serde_json::json!({"code": 9107}),
    };
    let outcomes = store
        .finish_exports(&[
            ("ga", 1, &moved),
            ("gb", 1, &stale),
            ("gc", 7, &fenced_out),
            ("gd", 1, &failed),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            Finished::Recorded,
            Finished::SourceChanged,
            Finished::LeaseLost,
            Finished::Recorded
        ]
    );
    let state = |id: &'static str| {
        let store = store.clone();
        async move { store.get_export(id).await.unwrap().unwrap().state }
    };
    assert_eq!(state("ga").await, JobState::Completed);
    assert_eq!(
        state("gb").await,
        JobState::Running,
        "a changed source writes nothing"
    );
    assert_eq!(
        state("gc").await,
        JobState::Running,
        "a fenced-out end writes nothing"
    );
    assert_eq!(state("gd").await, JobState::Failed);
    assert_eq!(store.get_file(&a.id).await.unwrap().unwrap().blob_id, None);
    assert!(store
        .get_file(&b.id)
        .await
        .unwrap()
        .unwrap()
        .blob_id
        .is_some());
    assert_eq!(
        store.get_file(&c.id).await.unwrap().unwrap().blob_id,
        Some(blob_c.id.clone()),
        "the fenced-out move did not flip its file"
    );
    assert_eq!(store.doomed_blobs(10).await.unwrap(), vec![blob_a.id]);
}

async fn moving_exports_are_found_in_one_query(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    make_volume(&store, "ann/v").await;
    let (_, root) = make_project(&store, "ann", "p").await;
    let (_, a) = add_blob_file(&store, &root, "a", 1).await;
    let (_, b) = add_blob_file(&store, &root, "b", 1).await;
    let (_, c) = add_blob_file(&store, &root, "c", 1).await;
    let mut copy = job("cb", "ann", &b, "ann/v", "kb");
    copy.copy_only = true;
    store
        .insert_exports(&[job("ma", "ann", &a, "ann/v", "ka"), copy], None)
        .await
        .unwrap();
    let ids = [a.id.clone(), b.id.clone(), c.id.clone()];
    assert_eq!(
        store.moving_exports(&ids).await.unwrap(),
        [(a.id.clone(), "ma".to_string())],
        "only unfinished moves hold a file"
    );
    assert!(store.moving_exports(&[]).await.unwrap().is_empty());
}

async fn moves_are_stored_and_keep_the_tree_whole(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    let (_, root) = make_project(&store, "ann", "p").await;
    let (_, other_root) = make_project(&store, "ann", "q").await;
    let dir = FileRec::new("ann/p", Some(&root.id), "dir", true);
    store.create_file(&dir).await.unwrap();
    let sub = FileRec::new("ann/p", Some(&dir.id), "sub", true);
    store.create_file(&sub).await.unwrap();
    let (_, mut a) = add_blob_file(&store, &root, "a", 1).await;

    // A move is stored, parent and name together.
    a.parent_id = Some(sub.id.clone());
    a.name = "b".into();
    store.update_file(&a).await.unwrap();
    let got = store.get_file(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (got.parent_id, got.name),
        (Some(sub.id.clone()), "b".to_string())
    );

    // Nowhere that is not a folder of the same project.
    let (_, file) = add_blob_file(&store, &root, "plain", 1).await;
    for parent in ["nope", file.id.as_str(), other_root.id.as_str()] {
        let mut moved = a.clone();
        moved.parent_id = Some(parent.to_string());
        assert!(
            matches!(store.update_file(&moved).await, Err(StoreError::NoParent)),
            "{parent}"
        );
    }
    // No folder into itself or below itself; the root is above everything.
    for (folder, parent) in [(&dir, &dir), (&dir, &sub), (&root, &dir)] {
        let mut moved = folder.clone();
        moved.parent_id = Some(parent.id.clone());
        assert!(matches!(
            store.update_file(&moved).await,
            Err(StoreError::IntoItself)
        ));
    }
    assert_eq!(
        store.get_file(&dir.id).await.unwrap().unwrap().parent_id,
        Some(root.id.clone())
    );
}

async fn files_go_only_into_folders_that_exist(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    make_volume(&store, "ann/v").await;
    let (_, root) = make_project(&store, "ann", "p").await;
    // A folder deleted before a commit: nothing is committed into it.
    let gone = FileRec::new("ann/p", Some(&root.id), "gone", true);
    store.create_file(&gone).await.unwrap();
    store.delete_file(&gone.id).await.unwrap();
    let folder = FileRec::new("ann/p", Some(&gone.id), "f", true);
    assert!(matches!(
        store.create_file(&folder).await,
        Err(StoreError::NoParent)
    ));
    let now = now_ms();
    let upload = Upload {
        id: "late".into(),
        owner: "ann".into(),
        project_id: "ann/p".into(),
        parent_id: gone.id.clone(),
        name: "late.txt".into(),
        size: 1,
        part_size: 5,
        overwrite: false,
        created_at: now,
        expires_at: now + 60_000,
    };
    store.create_upload(&upload).await.unwrap();
    let blob = Blob {
        id: "late".into(),
        size: 1,
        md5: "m".into(),
        crc32c: "c".into(),
    };
    let mut late = FileRec::new("ann/p", Some(&gone.id), "late.txt", false);
    late.blob_id = Some(blob.id.clone());
    assert!(matches!(
        store
            .complete_upload(Some("late"), &blob, &late, None)
            .await,
        Err(StoreError::NoParent)
    ));
    assert!(store.get_file(&late.id).await.unwrap().is_none());
    assert!(
        store.get_upload("late").await.unwrap().is_some(),
        "the upload (and so its bytes) is left to the upload sweeper"
    );
    assert!(
        store.doomed_blobs(10).await.unwrap().is_empty(),
        "no blob row was made"
    );

    let import = ImportRec {
        seq: 0,
        id: "imp".into(),
        owner: "ann".into(),
        volume_id: "ann/v".into(),
        volume_uid: uid_of("ann/v"),
        location: "in/".into(),
        project_id: "ann/p".into(),
        parent_id: gone.id.clone(),
        name: None,
        overwrite: false,
        autorename: false,
        preserve_folder_structure: true,
        state: JobState::Pending,
        error: None,
        attempt: 0,
        lease_owner: None,
        lease_expires_at: 0,
        next_attempt_at: 0,
        cursor: None,
        objects_imported: 0,
        result_file_id: None,
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    store.insert_imports(&[import]).await.unwrap();
    let [job] = store
        .claim_imports("n", now, now + 60_000, 1)
        .await
        .unwrap()
        .try_into()
        .unwrap();
    let batch = ImportBatch {
        top_folder: Some("in".into()),
        aliases: vec![NewAlias {
            folders: vec!["x".into()],
            name: "o".into(),
            size: 1,
            md5: None,
            location: "in/x/o".into(),
        }],
        cursor: Some("in/x/o".into()),
        done: true,
    };
    assert!(matches!(
        store.commit_import_batch(&job, &batch).await,
        Err(StoreError::NoParent)
    ));
    let job = store.get_import("imp").await.unwrap().unwrap();
    assert_eq!((job.state, job.objects_imported), (JobState::Running, 0));
}

fn file_job(
    id: &str,
    owner: &str,
    kind: FileJobKind,
    files: &[&str],
) -> (FileJobRec, Vec<FileJobItem>) {
    let job = FileJobRec {
        seq: 0,
        id: id.into(),
        owner: owner.into(),
        kind: kind.as_str().into(),
        state: JobState::Pending,
        total_items: files.len() as i64,
        next_item: 0,
        completed_items: 0,
        failed_items: 0,
        attempt: 0,
        lease_owner: None,
        lease_expires_at: 0,
        next_attempt_at: 0,
        error: None,
        created_at: now_ms(),
        started_at: None,
        finished_at: None,
    };
    let items = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut item = FileJobItem::new(id, i as i64);
            item.file_id = f.to_string();
            item
        })
        .collect();
    (job, items)
}

async fn file_jobs_are_leased_fenced_and_done_once(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    store.create_user(&user("bob"), "h2").await.unwrap();
    let (_, root) = make_project(&store, "ann", "p").await;
    let (_, q_root) = make_project(&store, "ann", "q").await;
    let folder = FileRec::new("ann/p", Some(&root.id), "d", true);
    store.create_file(&folder).await.unwrap();
    let sub = FileRec::new("ann/p", Some(&folder.id), "e", true);
    store.create_file(&sub).await.unwrap();
    let (inner_blob, inner) = add_blob_file(&store, &sub, "b.txt", 5).await;
    let (_, a) = add_blob_file(&store, &root, "a.txt", 3).await;

    // A copy of the folder into q takes references to the same bytes.
    let (mut copy_job, mut copy_items) = file_job("c1", "ann", FileJobKind::Copy, &[&folder.id]);
    copy_items[0].project_id = Some("ann/q".into());
    store.insert_file_job(&copy_job, &copy_items).await.unwrap();
    let now = now_ms();
    let claimed = store
        .claim_file_jobs("n1", now, now + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    copy_job = claimed[0].clone();
    assert_eq!((copy_job.state, copy_job.attempt), (JobState::Running, 1));
    let ItemApplied::Done(top) = store
        .apply_file_job_item(&copy_job, &copy_items[0])
        .await
        .unwrap()
    else {
        panic!("the copy is done")
    };
    assert_eq!(
        (top.name.as_str(), top.parent_id.as_deref()),
        ("d", Some(q_root.id.as_str()))
    );
    assert!(
        matches!(
            store
                .apply_file_job_item(&copy_job, &copy_items[0])
                .await
                .unwrap(),
            ItemApplied::LeaseLost
        ),
        "an item is done once"
    );
    let (copied, _) = store
        .list_children(
            &top.id,
            &FileFilter::default(),
            Page {
                offset: 0,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        copied.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["e"]
    );
    assert!(store
        .finish_file_job(
            "c1",
            1,
            &JobEnd::Completed {
                bytes: 0,
                alias: None
            }
        )
        .await
        .unwrap());

    // A delete of the folder, a file and a file that does not exist, claimed twice.
    let (job, items) = file_job(
        "d1",
        "ann",
        FileJobKind::Delete,
        &[&folder.id, &a.id, "nope"],
    );
    store.insert_file_job(&job, &items).await.unwrap();
    let now = now_ms();
    let first = store
        .claim_file_jobs("n1", now, now + 1, 10)
        .await
        .unwrap()
        .remove(0);
    assert!(
        store
            .claim_file_jobs("n2", now, now + 1, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert!(matches!(
        store.apply_file_job_item(&first, &items[0]).await.unwrap(),
        ItemApplied::Done(_)
    ));
    assert!(
        store.get_file(&inner.id).await.unwrap().is_none(),
        "the folder went with its contents"
    );
    assert!(
        store.doomed_blobs(10).await.unwrap().is_empty(),
        "the copy in q still holds b.txt's bytes"
    );

    // The lease expires; the next attempt fences the first one out.
    assert_eq!(store.expire_leases(now + 10).await.unwrap(), 1);
    let second = store
        .claim_file_jobs("n2", now + 10, now + 60_000, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (second.attempt, second.next_item, second.completed_items),
        (2, 1, 1)
    );
    assert!(matches!(
        store.apply_file_job_item(&first, &items[1]).await.unwrap(),
        ItemApplied::LeaseLost
    ));
    assert!(!store
        .fail_file_job_item(&first, 1, &serde_json::json!({"code": 1}))
        .await
        .unwrap());
    assert!(!store.renew_file_job("d1", 1, now + 60_000).await.unwrap());
    assert!(store.renew_file_job("d1", 2, now + 60_000).await.unwrap());
    assert!(
        store.get_file(&a.id).await.unwrap().is_some(),
        "nothing done by a fenced attempt"
    );
    assert!(matches!(
        store.apply_file_job_item(&second, &items[1]).await.unwrap(),
        ItemApplied::Done(_)
    ));
    assert!(matches!(
        store.apply_file_job_item(&second, &items[2]).await.unwrap(),
        ItemApplied::Failed(ItemFailure::SourceMissing)
    ));
    let error = serde_json::json!({"status": 404, "code": 5002});
    assert!(store.fail_file_job_item(&second, 2, &error).await.unwrap());
    assert!(!store
        .finish_file_job(
            "d1",
            1,
            &JobEnd::Completed {
                bytes: 0,
                alias: None
            }
        )
        .await
        .unwrap());
    assert!(store
        .finish_file_job(
            "d1",
            2,
            &JobEnd::Completed {
                bytes: 0,
                alias: None
            }
        )
        .await
        .unwrap());
    let done = store.get_file_job("d1").await.unwrap().unwrap();
    assert_eq!(
        (
            done.state,
            done.next_item,
            done.completed_items,
            done.failed_items
        ),
        (JobState::Completed, 3, 2, 1)
    );
    let items = store.file_job_items(&["d1".to_string()]).await.unwrap();
    assert_eq!(
        items.iter().map(|i| i.position).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(items.iter().all(|i| i.done));
    assert_eq!(items[0].resource_file().unwrap().id, folder.id);
    assert_eq!(items[2].error.as_ref().unwrap().0, error);

    // Rights are read as each item takes effect: bob sees nothing, then may only read.
    let (job, mut items) = file_job(
        "m1",
        "bob",
        FileJobKind::Copy,
        &[&inner_copy_id(&store, &top).await],
    );
    items[0].project_id = Some("ann/p".into());
    store.insert_file_job(&job, &items).await.unwrap();
    let now = now_ms();
    let bobs = store
        .claim_file_jobs("n1", now, now + 60_000, 10)
        .await
        .unwrap()
        .remove(0);
    assert!(matches!(
        store.apply_file_job_item(&bobs, &items[0]).await.unwrap(),
        ItemApplied::Failed(ItemFailure::SourceMissing)
    ));
    let read_only = Perms {
        read: true,
        ..Perms::default()
    };
    store
        .put_member(&Member {
            kind: MemberKind::Project,
            resource_id: "ann/q".into(),
            username: "bob".into(),
            perms: read_only,
        })
        .await
        .unwrap();
    assert!(matches!(
        store.apply_file_job_item(&bobs, &items[0]).await.unwrap(),
        ItemApplied::Failed(ItemFailure::SourceForbidden)
    ));
    let copier = Perms {
        read: true,
        copy: true,
        ..Perms::default()
    };
    store
        .put_member(&Member {
            kind: MemberKind::Project,
            resource_id: "ann/q".into(),
            username: "bob".into(),
            perms: copier,
        })
        .await
        .unwrap();
    assert!(
        matches!(
            store.apply_file_job_item(&bobs, &items[0]).await.unwrap(),
            ItemApplied::Failed(ItemFailure::ProjectMissing)
        ),
        "bob cannot see the destination"
    );
    let _ = inner_blob;
}

/// The id of `b.txt` inside the copied folder `top` (`top/e/b.txt`).
async fn inner_copy_id(store: &DynStore, top: &FileRec) -> String {
    let page = Page {
        offset: 0,
        limit: 10,
    };
    let (e, _) = store
        .list_children(&top.id, &FileFilter::default(), page)
        .await
        .unwrap();
    let (b, _) = store
        .list_children(&e[0].id, &FileFilter::default(), page)
        .await
        .unwrap();
    assert_eq!(b[0].name, "b.txt");
    b[0].id.clone()
}

async fn file_job_moves_merge_folders_and_cross_projects(store: DynStore) {
    store.create_user(&user("ann"), "h1").await.unwrap();
    let (_, p_root) = make_project(&store, "ann", "p").await;
    let (_, q_root) = make_project(&store, "ann", "q").await;
    let d = FileRec::new("ann/p", Some(&p_root.id), "d", true);
    store.create_file(&d).await.unwrap();
    let e = FileRec::new("ann/p", Some(&d.id), "e", true);
    store.create_file(&e).await.unwrap();
    let (_, x) = add_blob_file(&store, &d, "x.txt", 1).await;
    let (_, y) = add_blob_file(&store, &e, "y.txt", 2).await;
    let qd = FileRec::new("ann/q", Some(&q_root.id), "d", true);
    store.create_file(&qd).await.unwrap();
    let (_, z) = add_blob_file(&store, &qd, "x.txt", 3).await;
    let (_, f) = add_blob_file(&store, &p_root, "f.txt", 4).await;
    let (_, taken) = add_blob_file(&store, &q_root, "f.txt", 5).await;

    let (job, mut items) = file_job("mv", "ann", FileJobKind::Move, &[&d.id, &f.id, &qd.id]);
    items[0].project_id = Some("ann/q".into());
    items[1].project_id = Some("ann/q".into());
    items[2].parent_id = Some(qd.id.clone());
    store.insert_file_job(&job, &items).await.unwrap();
    let now = now_ms();
    let job = store
        .claim_file_jobs("n1", now, now + 60_000, 1)
        .await
        .unwrap()
        .remove(0);

    let ItemApplied::Done(top) = store.apply_file_job_item(&job, &items[0]).await.unwrap() else {
        panic!("the folder moved")
    };
    assert_eq!(top.id, qd.id, "d merged into q's d");
    assert!(store.get_file(&d.id).await.unwrap().is_none());
    let page = Page {
        offset: 0,
        limit: 10,
    };
    let (in_qd, _) = store
        .list_children(&qd.id, &FileFilter::default(), page)
        .await
        .unwrap();
    let seen: Vec<(&str, &str)> = in_qd
        .iter()
        .map(|f| (f.name.as_str(), f.id.as_str()))
        .collect();
    let new_e = in_qd.iter().find(|f| f.name == "e").unwrap().id.clone();
    assert_ne!(new_e, e.id, "a moved folder gets a new id");
    assert_eq!(
        seen,
        [
            ("e", new_e.as_str()),
            ("_1_x.txt", x.id.as_str()),
            ("x.txt", z.id.as_str())
        ]
    );
    let moved_y = store.get_file(&y.id).await.unwrap().unwrap();
    assert_eq!(
        (moved_y.project_id.as_str(), moved_y.parent_id.as_deref()),
        ("ann/q", Some(new_e.as_str()))
    );

    let ItemApplied::Done(moved) = store.apply_file_job_item(&job, &items[1]).await.unwrap() else {
        panic!("the file moved")
    };
    assert_eq!(
        (
            moved.id.as_str(),
            moved.name.as_str(),
            moved.project_id.as_str()
        ),
        (f.id.as_str(), "_1_f.txt", "ann/q")
    );
    assert_eq!(
        store.get_file(&taken.id).await.unwrap().unwrap().name,
        "f.txt"
    );
    assert!(matches!(
        store.apply_file_job_item(&job, &items[2]).await.unwrap(),
        ItemApplied::Failed(ItemFailure::IntoItself)
    ));
    assert!(
        store.doomed_blobs(10).await.unwrap().is_empty(),
        "a move drops no reference"
    );

    // A job that fails as a whole ends its items not done with its error; an item refused at
    // submission keeps its own.
    let (job, mut items) = file_job("fx", "ann", FileJobKind::Delete, &[&f.id, "bad"]);
    let own = serde_json::json!({"status": 400, "code": 5033});
    items[1].refuse(own.clone());
    store.insert_file_job(&job, &items).await.unwrap();
    let now = now_ms();
    let job = store
        .claim_file_jobs("n1", now, now + 60_000, 1)
        .await
        .unwrap()
        .remove(0);
    let error = serde_json::json!({"status": 503, "code": 9000});
    let failed = JobEnd::Failed {
        error: error.clone(),
    };
    assert!(
        !store.finish_file_job("fx", 9, &failed).await.unwrap(),
        "fenced"
    );
    assert!(store
        .finish_file_job("fx", job.attempt, &failed)
        .await
        .unwrap());
    let ended = store.get_file_job("fx").await.unwrap().unwrap();
    assert_eq!(
        (ended.state, ended.next_item, ended.failed_items),
        (JobState::Failed, 2, 2)
    );
    let items = store.file_job_items(&["fx".to_string()]).await.unwrap();
    let errors: Vec<_> = items
        .iter()
        .map(|i| (i.done, i.error.as_ref().unwrap().0.clone()))
        .collect();
    assert_eq!(errors, [(true, error), (true, own)]);
    assert!(store.get_file(&f.id).await.unwrap().is_some());
}
