//! `egress export` and `egress import`: move a whole project to a volume, or a volume's prefix
//! into a project, through the public SBG API only, so the same commands work against Egress
//! and CAVATICA. Bulk calls of 100, polls of 100, a journal to resume from, a report per file.

mod api;
mod connect;
mod export;
mod import;
mod journal;
mod manifest;
mod progress;
mod project;
mod report;
mod run;

pub use connect::ConnectArgs;
pub use export::ExportArgs;
pub use import::ImportArgs;

use api::{Api, ApiError};
use clap::Args;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Why a run could not start or go on; each is exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum Fail {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Api(String),
    #[error("{0}")]
    Connection(String),
}

impl Fail {
    /// What went wrong while doing `what`.
    fn from_api(what: &str, e: ApiError) -> Self {
        match e {
            ApiError::Connection(why) => Self::Connection(format!(
                "{what}: {why}; run the same command again to resume"
            )),
            e => Self::Api(format!("{what}: {e}")),
        }
    }
}

/// Options export and import share.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Write a CSV with one row per file: what it was, where it went, the job, how it ended.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// List what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t = progress::Mode::Auto)]
    pub progress: progress::Mode,
    /// Where runs keep their journals, to resume from
    /// [default: $XDG_STATE_HOME/egress, or ~/.local/state/egress].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Exit codes: every file completed (now or before); some failed or were skipped; the run could
/// not start or go on.
pub const EXIT_OK: i32 = 0;
pub const EXIT_SOME_FAILED: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

pub async fn export(args: ExportArgs) -> i32 {
    finish("export", export::run(args).await)
}

pub async fn import(args: ImportArgs) -> i32 {
    finish("import", import::run(args).await)
}

fn finish(verb: &str, outcome: Result<i32, Fail>) -> i32 {
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("egress {verb}: {e}");
            EXIT_ERROR
        }
    }
}

/// Connects and checks the token: a bad one is named before anything else is asked.
async fn connect(args: &ConnectArgs) -> Result<(Api, String), Fail> {
    let conn = connect::resolve(args, &connect::Env::from_process())?;
    let source = conn.source.clone();
    let api = Api::new(conn)?;
    // Not retried: an API that cannot be reached at the start is named at once.
    let me = api.call(
        reqwest::Method::GET,
        "/user",
        &[],
        None,
        None,
        api::Retry::Never,
    );
    match me.await {
        Ok(user) => {
            let name = user.body["username"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Ok((api, name))
        }
        Err(ApiError::Status { status: 401, .. }) => Err(Fail::Api(format!(
            "the token from {source} was refused by {} (401): check it, or make a new one",
            api.base()
        ))),
        Err(e) => Err(Fail::from_api("checking the token", e)),
    }
}

/// The volume `owner/name` as the API shows it; a missing one is named before anything is sent.
async fn get_volume(api: &Api, id: &str) -> Result<serde_json::Value, Fail> {
    let (owner, name) = two_part_id("volume", id)?;
    match api
        .get(&format!("/storage/volumes/{owner}/{name}"), &[])
        .await
    {
        Ok(v) => Ok(v.body),
        Err(ApiError::Status { status: 404, .. }) => Err(Fail::Api(format!(
            "no volume {id} at {} (or it is not shared with you)",
            api.base()
        ))),
        Err(e) => Err(Fail::from_api(&format!("reading volume {id}"), e)),
    }
}

/// `owner/name` (a volume) or `owner/slug` (a project), checked before it goes into a path.
fn two_part_id(what: &str, id: &str) -> Result<(String, String), Fail> {
    let ok = |s: &str| !s.is_empty() && !s.contains(['?', '#', '%']) && s != "." && s != "..";
    match id.split_once('/') {
        Some((a, b)) if ok(a) && ok(b) && !b.contains('/') => Ok((a.into(), b.into())),
        _ => Err(Fail::Usage(format!(
            "--{what} '{id}' must be OWNER/NAME, like the id the API shows"
        ))),
    }
}

/// The journal of this run: the same command, user and API give the same file.
fn journal_path(state_dir: Option<&PathBuf>, parts: &[&str]) -> Result<PathBuf, Fail> {
    let dir = match state_dir {
        Some(d) => d.clone(),
        None => {
            let var = |k| {
                std::env::var_os(k)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            };
            var("XDG_STATE_HOME")
                .or_else(|| var("HOME").map(|h| h.join(".local").join("state")))
                .ok_or_else(|| Fail::Usage("HOME is not set: give --state-dir".into()))?
                .join("egress")
        }
    };
    Ok(dir.join("runs").join(format!("{}.jsonl", run_id(parts))))
}

/// Names a run by what it does, so a rerun of the same command finds its journal.
fn run_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}

/// `--dry-run`: what would go where, and what would be skipped. Changes nothing.
fn dry_run(verb: &str, items: &[run::Item], skipped: &[run::Row]) -> i32 {
    for i in items {
        println!("would {verb} {} ({}) -> {}", i.source, i.key, i.destination);
    }
    for r in skipped {
        let why = r.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
        println!("would skip {} ({}): {why}", r.item.source, r.item.key);
    }
    let bytes: u64 = items.iter().map(|i| i.bytes).sum();
    println!(
        "egress {verb} --dry-run: {} files ({}) would be submitted, {} skipped; nothing was changed",
        items.len(),
        indicatif::HumanBytes(bytes),
        skipped.len()
    );
    EXIT_OK
}

/// A file's content digest: a changed manifest is another run.
fn file_digest(path: &std::path::Path) -> Result<String, Fail> {
    let bytes = std::fs::read(path)
        .map_err(|e| Fail::Usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(hex::encode(Sha256::digest(bytes)))
}

/// A path in a project, or a location: segments joined with `/`, empty ones dropped.
fn join(prefix: &str, rest: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        rest.to_string()
    } else {
        format!("{p}/{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_paths() {
        assert_eq!(
            two_part_id("volume", "ann/vol").unwrap(),
            ("ann".into(), "vol".into())
        );
        for bad in ["ann", "ann/", "/vol", "a/b/c", "a/..", "a/b?x=1", "a/%2e"] {
            assert!(two_part_id("volume", bad).is_err(), "{bad}");
        }
        assert_eq!(join("", "a/b"), "a/b");
        assert_eq!(join("/out/", "a/b"), "out/a/b");
        assert_ne!(run_id(&["a", "bc"]), run_id(&["ab", "c"]));
    }
}
