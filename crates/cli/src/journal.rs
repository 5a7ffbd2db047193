//! The run's journal: an append-only file of JSON lines that records each batch before it is
//! sent, what the server answered, and which jobs ended. A rerun of the same command reads it
//! back and resumes: it polls what was submitted, never sends a recorded batch twice without
//! first asking the server whether it arrived, and skips what already completed.

use crate::Fail;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    pub code: i64,
    pub message: String,
}

/// One item's answer in a submitted batch: a job, or why it was refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submitted {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
}

/// A job that reached a final state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ended {
    pub key: String,
    pub job: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Entry {
    /// Synced to disk before the batch is sent; `at` is the sender's clock, in ms.
    Sending {
        batch: u64,
        at: i64,
        keys: Vec<String>,
    },
    Sent {
        batch: u64,
        items: Vec<Submitted>,
    },
    Ended {
        jobs: Vec<Ended>,
    },
}

/// What is known of one item from earlier runs, the latest entry winning.
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    Running {
        job: String,
    },
    Ended {
        job: String,
        state: String,
        error: Option<JobError>,
    },
    Refused(JobError),
}

/// A batch recorded as sending with no answer recorded: it may or may not have arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct InDoubt {
    pub batch: u64,
    pub at: i64,
    pub keys: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Replayed {
    pub known: HashMap<String, Known>,
    pub in_doubt: Vec<InDoubt>,
    pub next_batch: u64,
}

pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens (or creates) the journal and reads back what it holds.
    pub fn open(path: &Path) -> Result<(Self, Replayed), Fail> {
        let fail = |e: std::io::Error| {
            Fail::Usage(format!("cannot use the journal {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let replayed = match File::open(path) {
            Ok(f) => replay(BufReader::new(f), path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Replayed::default(),
            Err(e) => return Err(fail(e)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(fail)?;
        Ok((
            Self {
                file,
                path: path.to_path_buf(),
            },
            replayed,
        ))
    }

    /// Appends an entry. A batch about to be sent is waited on until it is on disk: without
    /// it a crash could forget a batch the server has. The rest only saves work when read
    /// back (a lost answer is asked for again, a lost end is polled again), so it is not.
    pub fn record(&mut self, entry: &Entry) -> Result<(), Fail> {
        let mut line = serde_json::to_vec(entry).expect("journal entries serialize");
        line.push(b'\n');
        let durable = matches!(entry, Entry::Sending { .. });
        self.file
            .write_all(&line)
            .and_then(|()| {
                if durable {
                    self.file.sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| {
                Fail::Usage(format!(
                    "cannot write the journal {}: {e}",
                    self.path.display()
                ))
            })
    }
}

fn replay(reader: impl BufRead, path: &Path) -> Result<Replayed, Fail> {
    let mut r = Replayed::default();
    let mut sending: HashMap<u64, InDoubt> = HashMap::new();
    let lines: Vec<String> = reader
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| Fail::Usage(format!("cannot read the journal {}: {e}", path.display())))?;
    let last = lines.len().saturating_sub(1);
    for (n, line) in lines.iter().enumerate() {
        let entry: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            // A kill while appending leaves the last line cut short; it was never acted on.
            Err(_) if n == last => break,
            Err(e) => {
                return Err(Fail::Usage(format!(
                    "the journal {} is damaged at line {}: {e}; move it away to start over",
                    path.display(),
                    n + 1
                )))
            }
        };
        match entry {
            Entry::Sending { batch, at, keys } => {
                r.next_batch = r.next_batch.max(batch + 1);
                sending.insert(batch, InDoubt { batch, at, keys });
            }
            Entry::Sent { batch, items } => {
                sending.remove(&batch);
                for s in items {
                    let known = match (s.job, s.error) {
                        (Some(job), _) => Known::Running { job },
                        (None, Some(error)) => Known::Refused(error),
                        (None, None) => continue,
                    };
                    r.known.insert(s.key, known);
                }
            }
            Entry::Ended { jobs } => {
                for e in jobs {
                    r.known.insert(
                        e.key,
                        Known::Ended {
                            job: e.job,
                            state: e.state,
                            error: e.error,
                        },
                    );
                }
            }
        }
    }
    r.in_doubt = sending.into_values().collect();
    r.in_doubt.sort_by_key(|d| d.batch);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_the_latest_word_on_each_item_and_the_batches_left_in_doubt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs").join("j.jsonl");
        let (mut j, fresh) = Journal::open(&path).unwrap();
        assert!(fresh.known.is_empty() && fresh.in_doubt.is_empty());
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        j.record(&Entry::Sending {
            batch: 0,
            at: 5,
            keys: keys(&["a", "b"]),
        })
        .unwrap();
        j.record(&Entry::Sent {
            batch: 0,
            items: vec![
                Submitted {
                    key: "a".into(),
                    job: Some("ja".into()),
                    error: None,
                },
                Submitted {
                    key: "b".into(),
                    job: None,
                    error: Some(JobError {
                        code: 9006,
                        message: "no".into(),
                    }),
                },
            ],
        })
        .unwrap();
        j.record(&Entry::Ended {
            jobs: vec![Ended {
                key: "a".into(),
                job: "ja".into(),
                state: "COMPLETED".into(),
                error: None,
            }],
        })
        .unwrap();
        j.record(&Entry::Sending {
            batch: 1,
            at: 9,
            keys: keys(&["c"]),
        })
        .unwrap();
        drop(j);
        // A kill in the middle of the next append.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"t\":\"sent\",\"batch\":1,\"ite").unwrap();

        let (_, r) = Journal::open(&path).unwrap();
        assert_eq!(r.next_batch, 2);
        assert_eq!(
            r.in_doubt,
            [InDoubt {
                batch: 1,
                at: 9,
                keys: keys(&["c"])
            }]
        );
        assert!(matches!(&r.known["a"], Known::Ended { state, .. } if state == "COMPLETED"));
        assert_eq!(
            r.known["b"],
            Known::Refused(JobError {
                code: 9006,
                message: "no".into()
            })
        );
        assert!(!r.known.contains_key("c"));
    }

    #[test]
    fn a_damaged_line_before_the_last_is_refused_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, "garbage\n{\"t\":\"ended\",\"jobs\":[]}\n").unwrap();
        let err = Journal::open(&path).err().unwrap().to_string();
        assert!(err.contains("damaged at line 1"), "{err}");
    }
}
