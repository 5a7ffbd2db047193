//! `egress import`: the objects under a prefix of a volume into a project, in bulk imports of
//! 100, or as one folder import that keeps the folder structure.

use crate::api::Api;
use crate::journal::Journal;
use crate::progress::Progress;
use crate::project::{self, Under};
use crate::run::{Item, Kind, Plan, Run};
use crate::{connect, get_volume, join, journal_path, report, two_part_id, Fail, RunArgs};
use clap::Args;
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// The source volume, OWNER/VOLUME.
    #[arg(long)]
    pub volume: String,
    /// The prefix of the volume to import, e.g. `runs/2024/`.
    #[arg(long, value_name = "PREFIX/")]
    pub location: String,
    /// The destination project, OWNER/PROJECT.
    #[arg(long)]
    pub project: String,
    /// A folder of the project to import into; missing folders are made.
    #[arg(long)]
    pub folder: Option<String>,
    /// One folder import that recreates the prefix's folders, instead of its files side by side.
    #[arg(long)]
    pub preserve_folder_structure: bool,
    /// Replace files of the same name.
    #[arg(long, conflicts_with = "autorename")]
    pub overwrite: bool,
    /// Name files `_1_name`, `_2_name`… when the name is taken.
    #[arg(long)]
    pub autorename: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

struct Import {
    volume: String,
    into: Under,
    overwrite: bool,
    autorename: bool,
    folder_import: bool,
}

impl Kind for Import {
    fn noun(&self) -> &'static str {
        "import"
    }

    fn volume(&self) -> &str {
        &self.volume
    }

    fn create_query(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn item_body(&self, item: &Item) -> Value {
        let destination = match &self.into {
            Under::Root(project) => json!({ "project": project }),
            Under::Folder(id) => json!({ "parent": id }),
        };
        let mut body = json!({
            "source": { "volume": self.volume, "location": item.key },
            "destination": destination,
            "overwrite": self.overwrite,
            "autorename": self.autorename,
        });
        if self.folder_import {
            body["preserve_folder_structure"] = Value::Bool(true);
        }
        body
    }

    fn job_key(&self, job: &Value, index: &HashMap<String, usize>, _: &[Item]) -> Option<String> {
        let location = job["source"]["location"].as_str()?;
        index.contains_key(location).then(|| location.to_string())
    }
}

pub async fn run(args: ImportArgs) -> Result<i32, Fail> {
    let (api, user) = connect(&args.run.connect).await?;
    let (owner, name) = two_part_id("volume", &args.volume)?;
    get_volume(&api, &args.volume).await?;
    let project = project::get(&api, &args.project).await?;
    let prefix = format!("{}/", args.location.trim_matches('/'));
    let prefix = if prefix == "/" { String::new() } else { prefix };
    let objects = browse(&api, &owner, &name, &prefix).await?;
    if objects.is_empty() {
        return Err(Fail::Usage(format!(
            "volume {} has no objects under '{prefix}'",
            args.volume
        )));
    }
    let folder = args
        .folder
        .as_deref()
        .unwrap_or("")
        .trim_matches('/')
        .to_string();
    let items: Vec<Item> = if args.preserve_folder_structure {
        let last = prefix
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        vec![Item {
            key: prefix.clone(),
            source: prefix.clone(),
            destination: join(&folder, last),
            bytes: objects.iter().map(|(_, size)| size).sum(),
        }]
    } else {
        objects
            .into_iter()
            .map(|(location, bytes)| {
                let base = location.rsplit('/').next().unwrap_or_default().to_string();
                Item {
                    source: location.clone(),
                    key: location,
                    destination: join(&folder, &base),
                    bytes,
                }
            })
            .collect()
    };
    if args.run.dry_run {
        return Ok(crate::dry_run("import", &items, &[]));
    }
    let into = match &args.folder {
        Some(path) => project::folder(&api, &project.id, path, true)
            .await?
            .expect("made when missing"),
        None => Under::Root(project.id.clone()),
    };
    let kind = Import {
        volume: args.volume.clone(),
        into,
        overwrite: args.overwrite,
        autorename: args.autorename,
        folder_import: args.preserve_folder_structure,
    };
    let path = journal_path(
        args.run.state_dir.as_ref(),
        &[
            "import",
            api.base(),
            &user,
            &args.volume,
            &prefix,
            &project.id,
            &folder,
            &args.preserve_folder_structure.to_string(),
            &args.overwrite.to_string(),
            &args.autorename.to_string(),
        ],
    )?;
    let run_id = path
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let journal = Journal::open(&path)?;
    let progress = Progress::new(args.run.progress, "import");
    let (mut plan, listed) = Plan::feeding();
    plan.items = items;
    plan.finish();
    let rows = Run::new(&api, &kind, journal, run_id, progress)
        .finish(listed)
        .await?;
    if let Some(report_path) = &args.run.report {
        report::write(report_path, ["location", "source", "path"], &rows)?;
    }
    Ok(report::summarize("import", &rows, &api, &path))
}

/// Every object under the prefix, with its size, sub-prefixes walked breadth first.
async fn browse(
    api: &Api,
    owner: &str,
    name: &str,
    prefix: &str,
) -> Result<Vec<(String, u64)>, Fail> {
    let path = format!("/storage/volumes/{owner}/{name}/list");
    let mut objects = Vec::new();
    let mut prefixes = std::collections::VecDeque::from([prefix.to_string()]);
    while let Some(p) = prefixes.pop_front() {
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("prefix", p.as_str()), ("limit", "100")];
            if let Some(t) = &token {
                q.push(("continuation_token", t));
            }
            let page = api
                .get(&path, &q)
                .await
                .map_err(|e| Fail::from_api(&format!("listing {owner}/{name}"), e))?
                .body;
            for o in page["items"].as_array().into_iter().flatten() {
                if let Some(location) = o["location"].as_str() {
                    let size = o["metadata"]["size"].as_u64().unwrap_or(0);
                    objects.push((location.to_string(), size));
                }
            }
            for sub in page["prefixes"].as_array().into_iter().flatten() {
                if let Some(s) = sub["prefix"].as_str() {
                    prefixes.push_back(s.to_string());
                }
            }
            token = next_token(&page);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(objects)
}

/// The continuation token of a listing's `next` link.
fn next_token(page: &Value) -> Option<String> {
    let next = page["links"]
        .as_array()?
        .iter()
        .find_map(|l| l["next"].as_str())?;
    let url = reqwest::Url::parse(next).ok()?;
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "continuation_token")?
        .1;
    Some(token.into_owned())
}
