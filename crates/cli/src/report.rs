//! The end of a run: the CSV report, the summary line and the exit code.

use crate::api::Api;
use crate::run::Row;
use crate::{Fail, EXIT_OK, EXIT_SOME_FAILED};
use indicatif::HumanBytes;
use std::path::Path;

/// The names of a report's first three columns: what the item is, where it was, where it went.
pub type Columns = [&'static str; 3];

pub fn write(path: &Path, columns: Columns, rows: &[Row]) -> Result<(), Fail> {
    let fail =
        |e: csv::Error| Fail::Usage(format!("cannot write the report {}: {e}", path.display()));
    let mut w = csv::Writer::from_path(path).map_err(fail)?;
    let [a, b, c] = columns;
    w.write_record([
        a,
        b,
        c,
        "job",
        "state",
        "error_code",
        "error_message",
        "bytes",
    ])
    .map_err(fail)?;
    for r in rows {
        let (code, message) = match &r.error {
            Some(e) if e.code != 0 => (e.code.to_string(), e.message.as_str()),
            Some(e) => (String::new(), e.message.as_str()),
            None => (String::new(), ""),
        };
        w.write_record([
            r.item.key.as_str(),
            &r.item.source,
            &r.item.destination,
            r.job.as_deref().unwrap_or(""),
            &r.state,
            &code,
            message,
            &r.item.bytes.to_string(),
        ])
        .map_err(fail)?;
    }
    w.flush()
        .map_err(|e| Fail::Usage(format!("cannot write the report {}: {e}", path.display())))
}

/// Prints the failures (a few) and the closing summary; returns the exit code.
pub fn summarize(verb: &str, rows: &[Row], api: &Api, journal: &Path) -> i32 {
    let completed = rows.iter().filter(|r| r.completed()).count();
    let before = rows.iter().filter(|r| r.before).count();
    let skipped = rows.iter().filter(|r| r.state == "SKIPPED").count();
    let failed = rows.len() - completed - skipped;
    let bytes: u64 = rows
        .iter()
        .filter(|r| r.completed())
        .map(|r| r.item.bytes)
        .sum();
    const SHOWN: usize = 10;
    for r in rows.iter().filter(|r| !r.completed()).take(SHOWN) {
        let why = r.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
        eprintln!("  {} {} ({}): {why}", r.state, r.item.source, r.item.key);
    }
    if rows.len() - completed > SHOWN {
        eprintln!(
            "  … and {} more (see --report)",
            rows.len() - completed - SHOWN
        );
    }
    println!(
        "egress {verb}: {} files: {completed} completed ({before} before this run), {failed} failed, {skipped} skipped; {} completed; {} API requests ({} rate-limited); journal {}",
        rows.len(),
        HumanBytes(bytes),
        api.requests(),
        api.rate_limited(),
        journal.display()
    );
    if completed == rows.len() {
        EXIT_OK
    } else {
        EXIT_SOME_FAILED
    }
}
