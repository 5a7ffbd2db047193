//! `egress serve --demo`: a demo user with a known token and a project of small sample files,
//! so a newcomer sees the API work with one command.

use anyhow::Result;
use egress_core::util::{now_ms, token_hash};
use egress_core::volume::{Service, ServiceKind};
use egress_engine::services::files::store_bytes;
use egress_engine::services::projects::create_project;
use egress_engine::services::Services;
use egress_store::{StoreError, User, VolumeRec};
use std::path::Path;

pub const DEMO_USER: &str = "demo";
/// Known on purpose: the demo is for trying Egress locally, never for real data.
pub const DEMO_TOKEN: &str = "demo-token-0123456789abcdef";
pub const DEMO_PROJECT_NAME: &str = "Demo project";

const SAMPLES: &[(&str, &str)] = &[
    ("README.txt", "Sample files served by Egress. Export them to a volume, or download them.\n"),
    ("sample.vcf", "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchr20\t14370\trs6054257\tG\tA\t29\tPASS\tDP=14\n"),
    ("reads.fastq", "@read1\nGATTTGGGGTTCAAAGCAGTATCGATCAAATAGTAAATCCATTTGTTCAACTCACAGTTT\n+\n!''*((((***+))%%%++)(%%%%).1***-+*''))**55CCF>>>>>>CCCCCCC65\n"),
];

pub const DEMO_VOLUME: &str = "demo_volume";

/// Creates the demo user, project and a local volume on first start; later starts find them
/// and do nothing.
pub async fn setup(services: &Services, data_dir: &Path) -> Result<()> {
    let user = User {
        username: DEMO_USER.into(),
        email: "demo@example.org".into(),
        is_admin: false,
        created_at: now_ms(),
    };
    match services
        .store
        .create_user(&user, &token_hash(DEMO_TOKEN))
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let project = create_project(
        services,
        &user,
        DEMO_PROJECT_NAME,
        Some("Try Egress here.".into()),
    )
    .await?;
    let root = services
        .store
        .get_file(&project.root_folder)
        .await?
        .ok_or_else(|| anyhow::anyhow!("root folder missing"))?;
    for (name, text) in SAMPLES {
        store_bytes(services, &root, name, text.as_bytes().to_vec()).await?;
    }
    let folder = volume_folder(&std::fs::canonicalize(data_dir)?);
    std::fs::create_dir_all(&folder)?;
    let id = format!("{DEMO_USER}/{DEMO_VOLUME}");
    let now = now_ms();
    let volume = VolumeRec {
        id: id.clone(),
        owner: DEMO_USER.into(),
        name: DEMO_VOLUME.into(),
        description: Some("A local folder standing in for an S3 bucket.".into()),
        access_mode: egress_core::model::AccessMode::Rw,
        active: true,
        service: Service {
            kind: ServiceKind::Local,
            bucket: String::new(),
            prefix: String::new(),
            endpoint: String::new(),
            region: String::new(),
            credential_id: String::new(),
            root: std::fs::canonicalize(&folder)?.display().to_string(),
            properties: Default::default(),
            ..Default::default()
        },
        secret: services.secrets.seal("", &id),
        created_at: now,
        modified_at: now,
        uid: egress_core::util::new_long_id(),
    };
    services.store.create_volume(&volume).await?;
    Ok(())
}

/// The demo volume's folder: beside the data dir, never inside it (no local volume may overlap
/// the server's own files).
pub fn volume_folder(data_dir: &Path) -> std::path::PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "egress-data".into());
    data_dir.with_file_name(format!("{name}-demo-volume"))
}

/// The welcome text with three commands to try: who am I, list the project, and export a
/// sample file to the demo volume (a copy, so the demo can be run again).
/// `base` is the server's public URL.
pub async fn welcome(services: &Services, base: &str, data_dir: &Path) -> Result<String> {
    let project = services
        .store
        .get_project(&format!("{DEMO_USER}/demo-project"))
        .await?;
    let root = project.map(|p| p.root_folder).unwrap_or_default();
    let filter = egress_store::FileFilter {
        names: vec!["sample.vcf".into()],
        tags: vec![],
        ..Default::default()
    };
    let (files, _) = services
        .store
        .list_children(
            &root,
            &filter,
            egress_store::Page {
                offset: 0,
                limit: 1,
            },
        )
        .await?;
    let file = files.first().map(|f| f.id.clone()).unwrap_or_default();
    let auth = format!("-H 'X-SBG-Auth-Token: {DEMO_TOKEN}'");
    Ok(format!(
        "Egress demo is running at {base}/v2\n\
         Demo user: {DEMO_USER}   token: {DEMO_TOKEN}   project: {DEMO_USER}/demo-project\n\
         Demo volume: {DEMO_USER}/{DEMO_VOLUME} (the folder {})\n\n\
         Try:\n\
         \x20 curl -s {auth} {base}/v2/user\n\
         \x20 curl -s {auth} '{base}/v2/files?project={DEMO_USER}/demo-project'\n\
         \x20 curl -s {auth} -X POST -H 'Content-Type: application/json' '{base}/v2/storage/exports?copy_only=true' \\\n\
         \x20      -d '{{\"source\": {{\"file\": \"{file}\"}}, \"destination\": {{\"volume\": \"{DEMO_USER}/{DEMO_VOLUME}\", \"location\": \"exports/sample.vcf\"}}, \"overwrite\": true}}'\n",
        volume_folder(&std::fs::canonicalize(data_dir)?).display()
    ))
}
