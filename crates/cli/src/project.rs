//! Reading a project through the API: the project, folders by path, and every file under a
//! folder with its path.

use crate::api::{Api, ApiError};
use crate::{two_part_id, Fail};
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};

/// Pages of a listing fetched at once, once the first page has told how many there are.
const PAGES_AT_ONCE: usize = 2;
const PAGE: u64 = 100;
/// The keys a file listing needs; fewer keys, smaller pages.
const FILE_FIELDS: &str = "id,name,size,type,storage,parent,project";

pub struct Project {
    pub id: String,
    pub public: bool,
}

pub async fn get(api: &Api, id: &str) -> Result<Project, Fail> {
    let (owner, slug) = two_part_id("project", id)?;
    match api.get(&format!("/projects/{owner}/{slug}"), &[]).await {
        Ok(p) => Ok(Project {
            id: p.body["id"].as_str().unwrap_or(id).to_string(),
            public: p.body["category"].as_str() == Some("PUBLIC"),
        }),
        Err(ApiError::Status { status: 404, .. }) => Err(Fail::Api(format!(
            "no project {id} at {} (or you are not a member)",
            api.base()
        ))),
        Err(e) => Err(Fail::from_api(&format!("reading project {id}"), e)),
    }
}

/// A file or folder of a listing.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub name: String,
    pub folder: bool,
    pub size: u64,
    /// `volume:location` when the file is an alias of an object on a volume.
    pub alias_of: Option<String>,
    pub parent: Option<String>,
    pub project: String,
}

impl Entry {
    pub fn from_json(v: &Value) -> Self {
        let storage = &v["storage"];
        let alias_of = (storage["type"].as_str() == Some("VOLUME")).then(|| {
            format!(
                "{}:{}",
                storage["volume"].as_str().unwrap_or_default(),
                storage["location"].as_str().unwrap_or_default()
            )
        });
        Self {
            id: v["id"].as_str().unwrap_or_default().to_string(),
            name: v["name"].as_str().unwrap_or_default().to_string(),
            folder: v["type"].as_str() == Some("folder"),
            size: v["size"].as_u64().unwrap_or(0),
            alias_of,
            parent: v["parent"].as_str().map(str::to_string),
            project: v["project"].as_str().unwrap_or_default().to_string(),
        }
    }
}

/// Where a listing starts: a project's root, or a folder.
#[derive(Debug, Clone)]
pub enum Under {
    Root(String),
    Folder(String),
}

impl Under {
    fn query(&self) -> (&'static str, &str) {
        match self {
            Self::Root(project) => ("project", project),
            Self::Folder(id) => ("parent", id),
        }
    }
}

/// One folder's entries, page by page in order: the first page, then the rest a few at a time.
pub async fn list_pages(
    api: &Api,
    under: &Under,
    name: Option<&str>,
    mut on_page: impl FnMut(Vec<Entry>),
) -> Result<(), Fail> {
    let page = |offset: u64| {
        let (key, value) = under.query();
        let offset = offset.to_string();
        let limit = PAGE.to_string();
        async move {
            let mut q = vec![
                (key, value),
                ("offset", offset.as_str()),
                ("limit", limit.as_str()),
                ("fields", FILE_FIELDS),
            ];
            if let Some(n) = name {
                q.push(("name", n));
            }
            let reply = api
                .get("/files", &q)
                .await
                .map_err(|e| Fail::from_api("listing files", e))?;
            Ok::<_, Fail>((
                reply.total,
                items(&reply.body)
                    .iter()
                    .map(Entry::from_json)
                    .collect::<Vec<_>>(),
            ))
        }
    };
    let (total, first) = page(0).await?;
    on_page(first);
    let mut rest = stream::iter((PAGE..total.unwrap_or(0)).step_by(PAGE as usize))
        .map(page)
        .buffered(PAGES_AT_ONCE);
    while let Some(next) = rest.next().await {
        on_page(next?.1);
    }
    Ok(())
}

/// One folder's entries.
pub async fn list(api: &Api, under: &Under, name: Option<&str>) -> Result<Vec<Entry>, Fail> {
    let mut all = Vec::new();
    list_pages(api, under, name, |page| all.extend(page)).await?;
    Ok(all)
}

fn items(body: &Value) -> Vec<Value> {
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Every file under `under`, with its path relative to it, folders walked breadth first; each
/// page's files go to `on_files` as soon as they are listed.
pub async fn walk(
    api: &Api,
    under: Under,
    mut on_files: impl FnMut(Vec<(String, Entry)>),
) -> Result<(), Fail> {
    let mut folders = std::collections::VecDeque::from([(under, String::new())]);
    while let Some((under, path)) = folders.pop_front() {
        list_pages(api, &under, None, |page| {
            let mut files = Vec::new();
            for e in page {
                let rel = crate::join(&path, &e.name);
                if e.folder {
                    folders.push_back((Under::Folder(e.id.clone()), rel));
                } else {
                    files.push((rel, e));
                }
            }
            on_files(files);
        })
        .await?;
    }
    Ok(())
}

/// The folder at `path` in the project; with `create`, the missing folders are made.
/// Returns `None` when it does not exist and `create` is false.
pub async fn folder(
    api: &Api,
    project: &str,
    path: &str,
    create: bool,
) -> Result<Option<Under>, Fail> {
    let mut under = Under::Root(project.to_string());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let found = list(api, &under, Some(segment)).await?;
        let id = match found.into_iter().find(|e| e.name == segment) {
            Some(e) if e.folder => e.id,
            Some(_) => {
                return Err(Fail::Usage(format!(
                    "'{segment}' in --folder {path} is a file, not a folder"
                )))
            }
            None if create => make_folder(api, &under, segment).await?,
            None => return Ok(None),
        };
        under = Under::Folder(id);
    }
    Ok(Some(under))
}

async fn make_folder(api: &Api, under: &Under, name: &str) -> Result<String, Fail> {
    let (key, value) = under.query();
    let body = json!({ "name": name, key: value, "type": "folder" });
    let made = api
        .post("/files", &body)
        .await
        .map_err(|e| Fail::from_api(&format!("making folder {name}"), e))?;
    Ok(made.body["id"].as_str().unwrap_or_default().to_string())
}
