//! `egress export`: files of a project (or a manifest) to a volume, in bulk exports of 100.

use crate::api::Api;
use crate::journal::Journal;
use crate::progress::Progress;
use crate::project::{self, Entry, Under};
use crate::run::{Item, Kind, Plan, Row, Run, BATCH};
use crate::{connect, get_volume, join, journal_path, manifest, report, Fail, RunArgs};
use clap::Args;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// The destination volume, OWNER/VOLUME.
    #[arg(long)]
    pub volume: String,
    /// Export every file of this project, OWNER/PROJECT.
    #[arg(
        long,
        required_unless_present = "manifest",
        conflicts_with = "manifest"
    )]
    pub project: Option<String>,
    /// Only the files under this folder of the project (a path such as `runs/2024`).
    #[arg(long, requires = "project")]
    pub folder: Option<String>,
    /// A CSV of files to export: a `file` column of ids, optionally a `location` column.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Put the objects under this prefix of the volume.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Move the files: the project keeps an alias, and platform storage is freed.
    #[arg(long = "move")]
    pub move_files: bool,
    /// Replace objects that already exist (otherwise those files fail with 9107).
    #[arg(long)]
    pub overwrite: bool,
    #[arg(long, value_parser = ["AES256", "aws:kms"])]
    pub sse_algorithm: Option<String>,
    #[arg(long, requires = "sse_algorithm")]
    pub kms_key_id: Option<String>,
    /// A canned ACL, e.g. bucket-owner-full-control.
    #[arg(long)]
    pub acl: Option<String>,
    /// e.g. STANDARD_IA, GLACIER_IR.
    #[arg(long)]
    pub storage_class: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

struct Export {
    volume: String,
    copy_only: bool,
    overwrite: bool,
    properties: Map<String, Value>,
}

impl Kind for Export {
    fn noun(&self) -> &'static str {
        "export"
    }

    fn volume(&self) -> &str {
        &self.volume
    }

    fn create_query(&self) -> Vec<(&'static str, String)> {
        vec![("copy_only", self.copy_only.to_string())]
    }

    fn item_body(&self, item: &Item) -> Value {
        let mut body = json!({
            "source": { "file": item.key },
            "destination": { "volume": self.volume, "location": item.destination },
            "overwrite": self.overwrite,
        });
        if !self.properties.is_empty() {
            body["properties"] = Value::Object(self.properties.clone());
        }
        body
    }

    fn job_key(
        &self,
        job: &Value,
        index: &HashMap<String, usize>,
        items: &[Item],
    ) -> Option<String> {
        let file = job["source"]["file"].as_str()?;
        let item = &items[*index.get(file)?];
        (job["destination"]["location"].as_str() == Some(item.destination.as_str()))
            .then(|| file.to_string())
    }
}

pub async fn run(args: ExportArgs) -> Result<i32, Fail> {
    let (api, user) = connect(&args.run.connect).await?;
    check_volume(&api, &args.volume).await?;
    let kind = Export {
        volume: args.volume.clone(),
        copy_only: !args.move_files,
        overwrite: args.overwrite,
        properties: properties(&args),
    };
    if args.run.dry_run {
        let mut plan = Plan::default();
        plan_into(&api, &args, &mut plan).await?;
        return Ok(crate::dry_run("export", &plan.items, &plan.skipped));
    }
    let manifest_digest = match &args.manifest {
        Some(m) => crate::file_digest(m)?,
        None => String::new(),
    };
    let path = journal_path(
        args.run.state_dir.as_ref(),
        &[
            "export",
            api.base(),
            &user,
            &args.volume,
            args.project.as_deref().unwrap_or(""),
            args.folder.as_deref().unwrap_or(""),
            &manifest_digest,
            &args.prefix,
            &kind.copy_only.to_string(),
            &kind.overwrite.to_string(),
            &Value::Object(kind.properties.clone()).to_string(),
        ],
    )?;
    let run_id = path
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let journal = Journal::open(&path)?;
    let progress = Progress::new(args.run.progress, "export");
    let (mut plan, listed) = Plan::feeding();
    if args.manifest.is_some() {
        // Every line is checked before the run starts.
        plan_into(&api, &args, &mut plan).await?;
    }
    let run = Run::new(&api, &kind, journal, run_id, progress).finish(listed);
    let lister = async {
        if args.manifest.is_none() {
            plan_into(&api, &args, &mut plan).await?;
        }
        Ok::<_, Fail>(plan.finish())
    };
    let (mut rows, skipped) = tokio::try_join!(run, lister)?;
    rows.extend(skipped);
    if let Some(report_path) = &args.run.report {
        report::write(report_path, ["file", "path", "location"], &rows)?;
    }
    Ok(report::summarize("export", &rows, &api, &path))
}

async fn plan_into(api: &Api, args: &ExportArgs, plan: &mut Plan) -> Result<(), Fail> {
    match (&args.project, &args.manifest) {
        (Some(p), _) => from_project(api, p, args.folder.as_deref(), &args.prefix, plan).await,
        (None, Some(m)) => from_manifest(api, m, &args.prefix, plan).await,
        (None, None) => unreachable!("clap requires --project or --manifest"),
    }
}

/// The volume must exist, be active and be writable: checked before anything is sent.
async fn check_volume(api: &Api, id: &str) -> Result<(), Fail> {
    let v = get_volume(api, id).await?;
    if v["access_mode"].as_str() == Some("RO") {
        return Err(Fail::Api(format!(
            "volume {id} is read-only (RO): exports need a RW volume"
        )));
    }
    if v["active"].as_bool() == Some(false) {
        return Err(Fail::Api(format!("volume {id} is deactivated")));
    }
    Ok(())
}

fn properties(args: &ExportArgs) -> Map<String, Value> {
    let mut p = Map::new();
    let mut set = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            p.insert(k.to_string(), Value::String(v.clone()));
        }
    };
    set("sse_algorithm", &args.sse_algorithm);
    set("sse_aws_kms_key_id", &args.kms_key_id);
    set("aws_canned_acl", &args.acl);
    set("aws_storage_class", &args.storage_class);
    p
}

/// Why a file is not exported, if it is not: folders are not files, aliases are already on a
/// volume, public files never leave the platform.
fn skip_reason(entry: &Entry, project_public: bool) -> Option<String> {
    if entry.folder {
        Some("a folder: export with --project and --folder to take its files".into())
    } else if let Some(target) = &entry.alias_of {
        Some(format!("an alias of {target}: already on a volume"))
    } else if project_public {
        Some("a public file: public reference files are not exported".into())
    } else {
        None
    }
}

/// Sorts an entry into the items to export or the skipped rows.
fn sort_into(
    entry: &Entry,
    project_public: bool,
    source: String,
    location: String,
    plan: &mut Plan,
) {
    let item = Item {
        key: entry.id.clone(),
        source,
        destination: location,
        bytes: entry.size,
    };
    match skip_reason(entry, project_public) {
        Some(why) => plan.skipped.push(Row::skipped(item, why)),
        None => plan.items.push(item),
    }
}

/// Plans the project's files (or a folder's), handing each page to the run as it is listed.
async fn from_project(
    api: &Api,
    id: &str,
    folder: Option<&str>,
    prefix: &str,
    plan: &mut Plan,
) -> Result<(), Fail> {
    let project = project::get(api, id).await?;
    let start = match folder {
        Some(path) => project::folder(api, &project.id, path, false)
            .await?
            .ok_or_else(|| Fail::Usage(format!("project {id} has no folder {path}")))?,
        None => Under::Root(project.id.clone()),
    };
    let base = folder.unwrap_or("").trim_matches('/');
    project::walk(api, start, |files| {
        for (rel, entry) in files {
            sort_into(
                &entry,
                project.public,
                join(base, &rel),
                join(prefix, &rel),
                plan,
            );
        }
        plan.flush();
    })
    .await
}

/// Plans a manifest's files, all of them before anything is submitted: a bad line stops the
/// run before it starts.
async fn from_manifest(api: &Api, path: &Path, prefix: &str, plan: &mut Plan) -> Result<(), Fail> {
    let lines = manifest::read(path)?;
    let mut paths = FolderPaths::default();
    let mut public: HashMap<String, bool> = HashMap::new();
    for chunk in lines.chunks(BATCH) {
        let ids: Vec<&str> = chunk.iter().map(|l| l.file.as_str()).collect();
        let reply = api
            .post("/bulk/files/get", &json!({ "file_ids": ids }))
            .await
            .map_err(|e| Fail::from_api("reading the manifest's files", e))?;
        let answers = reply.body["items"].as_array().cloned().unwrap_or_default();
        for (line, answer) in chunk.iter().zip(answers) {
            let Some(file) = answer.get("resource").filter(|r| r.is_object()) else {
                let why = answer["error"]["message"].as_str().unwrap_or("not found");
                return Err(Fail::Usage(format!(
                    "manifest {} line {}: file {}: {why}",
                    path.display(),
                    line.number,
                    line.file
                )));
            };
            let entry = Entry::from_json(file);
            let in_project = join(&paths.of(api, entry.parent.as_deref()).await?, &entry.name);
            let source = format!("{}/{in_project}", entry.project);
            let location = line
                .location
                .clone()
                .unwrap_or_else(|| join(prefix, &in_project));
            let is_public = match public.get(&entry.project) {
                Some(p) => *p,
                None => {
                    let p = project::get(api, &entry.project).await?.public;
                    *public.entry(entry.project.clone()).or_insert(p)
                }
            };
            sort_into(&entry, is_public, source, location, plan);
        }
    }
    Ok(())
}

/// Folder paths within their project, each folder read once.
#[derive(Default)]
struct FolderPaths(HashMap<String, String>);

impl FolderPaths {
    /// The path of a folder inside its project: empty for the root folder.
    async fn of(&mut self, api: &Api, folder: Option<&str>) -> Result<String, Fail> {
        let mut chain = Vec::new();
        let mut at = folder.map(str::to_string);
        let mut known = String::new();
        while let Some(id) = at {
            if let Some(path) = self.0.get(&id) {
                known = path.clone();
                break;
            }
            let f = api
                .get(&format!("/files/{id}"), &[("fields", "id,name,parent")])
                .await
                .map_err(|e| Fail::from_api("reading a folder", e))?;
            let parent = f.body["parent"].as_str().map(str::to_string);
            // The root folder (no parent) is not part of paths.
            let name = if parent.is_some() {
                f.body["name"].as_str().unwrap_or_default()
            } else {
                ""
            };
            chain.push((id, name.to_string()));
            at = parent;
        }
        for (id, name) in chain.into_iter().rev() {
            known = join(&known, &name).trim_matches('/').to_string();
            self.0.insert(id, known.clone());
        }
        Ok(known)
    }
}
