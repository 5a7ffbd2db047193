//! The part of a run that export and import share: submit the items in bulk calls of 100, poll
//! the unfinished jobs in bulk gets of 100, and keep the journal that makes a rerun resume.

use crate::api::{Api, ApiError, Retry};
use crate::journal::{Ended, Entry, InDoubt, JobError, Journal, Known, Replayed, Submitted};
use crate::progress::Progress;
use crate::Fail;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const BATCH: usize = 100;
/// How long a submission is retried while the server cannot be reached.
const SUBMIT_RETRY_FOR: Duration = Duration::from_secs(300);
/// Jobs the server made up to this long before the sender's clock said it sent them still
/// count as that batch's when it is looked for (clock skew).
const CLOCK_SLACK_MS: i64 = 10 * 60 * 1000;
/// Polls come more slowly as the oldest unfinished job ages: a twentieth of its age, within
/// these.
const POLL_MIN: Duration = Duration::from_millis(250);
const POLL_MAX: Duration = Duration::from_secs(30);
/// While batches are still being submitted, polls only keep the progress current: each one
/// would delay the next submission.
const POLL_WHILE_SUBMITTING: Duration = Duration::from_secs(1);
/// Every this many polling rounds, a round asks even when the count announced no ending (and,
/// without counts, asks about every unfinished job).
const FULL_ROUND_EVERY: u64 = 10;

/// One thing to transfer: a file to export, or an object to import.
#[derive(Debug, Clone)]
pub struct Item {
    /// What identifies it to the API: a file id, or an object's location.
    pub key: String,
    /// Where it is now, for people: a path in the project, or the location.
    pub source: String,
    /// Where it goes, for people and for the request: a location, or a path in the project.
    pub destination: String,
    pub bytes: u64,
}

/// How one item ended.
#[derive(Debug, Clone)]
pub struct Row {
    pub item: Item,
    pub job: Option<String>,
    /// COMPLETED, FAILED (or another final state the server names), or SKIPPED.
    pub state: String,
    pub error: Option<JobError>,
    /// Completed by an earlier run of the same command.
    pub before: bool,
}

impl Row {
    pub fn skipped(item: Item, why: impl Into<String>) -> Self {
        Self {
            item,
            job: None,
            state: "SKIPPED".into(),
            error: Some(JobError {
                code: 0,
                message: why.into(),
            }),
            before: false,
        }
    }

    pub fn completed(&self) -> bool {
        self.state == "COMPLETED"
    }
}

/// Where a plan goes as it is made: items to the run as each page is listed (or kept, for
/// `--dry-run`), skipped rows kept for the report.
#[derive(Default)]
pub struct Plan {
    to_run: Option<mpsc::UnboundedSender<Vec<Item>>>,
    pub items: Vec<Item>,
    pub skipped: Vec<Row>,
}

impl Plan {
    /// A plan that feeds a run; `finish` it to tell the run that listing is over.
    pub fn feeding() -> (Self, mpsc::UnboundedReceiver<Vec<Item>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let plan = Self {
            to_run: Some(tx),
            ..Self::default()
        };
        (plan, rx)
    }

    /// Hands the items planned so far to the run (a no-op for a plan that only collects).
    pub fn flush(&mut self) {
        if let Some(tx) = &self.to_run {
            if !self.items.is_empty() {
                // A run that has stopped has already failed and says why.
                let _ = tx.send(std::mem::take(&mut self.items));
            }
        }
    }

    /// Flushes, ends the listing, and keeps the skipped rows.
    pub fn finish(mut self) -> Vec<Row> {
        self.flush();
        self.skipped
    }
}

/// What differs between exports and imports.
pub trait Kind {
    /// `export` or `import`: the API's paths and fields are named after it.
    fn noun(&self) -> &'static str;
    /// The volume the jobs go to or come from: the job listing is narrowed to it.
    fn volume(&self) -> &str;
    fn create_query(&self) -> Vec<(&'static str, String)>;
    fn item_body(&self, item: &Item) -> Value;
    /// The item a job was made for, if this run would have made it.
    fn job_key(&self, job: &Value, items: &HashMap<String, usize>, all: &[Item]) -> Option<String>;
}

enum Outcome {
    Ended {
        job: String,
        state: String,
        error: Option<JobError>,
        before: bool,
    },
    Refused(JobError),
}

/// A submitted job that has not ended.
struct Inflight {
    job: String,
    item: usize,
    since: Instant,
}

pub struct Run<'a, K: Kind> {
    api: &'a Api,
    kind: &'a K,
    journal: Journal,
    run_id: String,
    progress: Progress,
    items: Vec<Item>,
    index: HashMap<String, usize>,
    outcomes: Vec<Option<Outcome>>,
    queue: VecDeque<usize>,
    /// In submission order, which is about the order the server runs them.
    inflight: Vec<Inflight>,
    /// What the journal says of items, applied to each item as it arrives.
    known: HashMap<String, Known>,
    /// Batches an earlier run recorded as sending, with no answer recorded: settled once every
    /// item is known.
    in_doubt: Vec<InDoubt>,
    doubtful: HashSet<String>,
    next_batch: u64,
    /// Whether the server counts unfinished jobs (a list's total), so polls can skip bulk
    /// gets while none of this run's can have ended.
    counts_work: bool,
    /// Work left, for the progress display.
    files_left: u64,
    bytes_left: u64,
}

impl<'a, K: Kind> Run<'a, K> {
    pub fn new(
        api: &'a Api,
        kind: &'a K,
        (journal, replayed): (Journal, Replayed),
        run_id: String,
        progress: Progress,
    ) -> Self {
        let Replayed {
            known,
            in_doubt,
            next_batch,
        } = replayed;
        let doubtful = in_doubt.iter().flat_map(|d| d.keys.clone()).collect();
        Self {
            api,
            kind,
            journal,
            run_id,
            progress,
            items: Vec::new(),
            index: HashMap::new(),
            outcomes: Vec::new(),
            queue: VecDeque::new(),
            inflight: Vec::new(),
            known,
            in_doubt,
            doubtful,
            next_batch,
            counts_work: true,
            files_left: 0,
            bytes_left: 0,
        }
    }

    /// Takes in listed items, sorted by what earlier runs did: completed ones are done,
    /// submitted ones are polled, the rest (failed ones included) are queued. Items of a batch
    /// in doubt wait until the server has been asked whether it arrived.
    fn add(&mut self, items: Vec<Item>) {
        let now = Instant::now();
        for item in items {
            let i = self.items.len();
            self.index.insert(item.key.clone(), i);
            let mut outcome = None;
            match self.known.get(&item.key) {
                _ if self.doubtful.contains(&item.key) => {}
                Some(Known::Ended { job, state, error }) if state == "COMPLETED" => {
                    outcome = Some(Outcome::Ended {
                        job: job.clone(),
                        state: state.clone(),
                        error: error.clone(),
                        before: true,
                    });
                }
                Some(Known::Running { job }) => self.inflight.push(Inflight {
                    job: job.clone(),
                    item: i,
                    since: now,
                }),
                _ => self.queue.push_back(i),
            }
            if outcome.is_none() {
                self.files_left += 1;
                self.bytes_left += item.bytes;
            }
            self.outcomes.push(outcome);
            self.items.push(item);
        }
        self.progress.plan(self.files_left, self.bytes_left);
    }

    /// Runs to the end, taking items as the lister sends them: every item ends in a final
    /// state or refused. Batches go out as soon as 100 items are known.
    pub async fn finish(
        mut self,
        mut listed: mpsc::UnboundedReceiver<Vec<Item>>,
    ) -> Result<Vec<Row>, Fail> {
        let mut listing = true;
        let mut next_poll = Instant::now();
        let mut round = 0u64;
        loop {
            while let Ok(items) = listed.try_recv() {
                self.add(items);
            }
            if listing && self.queue.len() < BATCH && self.inflight.is_empty() {
                // Nothing to do but wait for the lister.
                match listed.recv().await {
                    Some(items) => self.add(items),
                    None => listing = false,
                }
                continue;
            }
            if !listing && !self.in_doubt.is_empty() {
                for doubt in std::mem::take(&mut self.in_doubt) {
                    self.settle_in_doubt(doubt).await?;
                }
            }
            if !listing && self.queue.is_empty() && self.inflight.is_empty() {
                break;
            }
            self.progress.tick();
            // Batches go out first, with polls in between when they are due.
            if self.queue.len() >= BATCH || (!listing && !self.queue.is_empty()) {
                let n = self.queue.len().min(BATCH);
                let batch: Vec<usize> = self.queue.drain(..n).collect();
                let number = self.next_batch;
                self.next_batch += 1;
                self.submit(number, batch).await?;
                if Instant::now() < next_poll || self.inflight.is_empty() {
                    continue;
                }
            } else if self.inflight.is_empty() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_poll.into()) => {}
                more = listed.recv(), if listing => {
                    match more {
                        Some(items) => self.add(items),
                        None => listing = false,
                    }
                    continue;
                }
            }
            round += 1;
            self.poll(round).await?;
            let mut pause = self.poll_interval();
            if listing || !self.queue.is_empty() {
                pause = pause.max(POLL_WHILE_SUBMITTING);
            }
            next_poll = Instant::now() + pause;
        }
        self.progress.finish();
        Ok(self.rows())
    }

    /// A twentieth of the oldest unfinished job's age: quick polls for quick jobs, few for slow.
    fn poll_interval(&self) -> Duration {
        let oldest = self.inflight.first().map(|f| f.since.elapsed());
        (oldest.unwrap_or_default() / 20).clamp(POLL_MIN, POLL_MAX)
    }

    fn idempotency_key(&self, batch: u64) -> String {
        format!("egress-{}-{batch}", self.run_id)
    }

    /// Sends one batch. The journal records it first; if the answer is lost, the server is
    /// asked which of its jobs exist before anything is sent again.
    async fn submit(&mut self, batch: u64, members: Vec<usize>) -> Result<(), Fail> {
        let keys: Vec<String> = members.iter().map(|&i| self.items[i].key.clone()).collect();
        let at = now_ms();
        self.journal.record(&Entry::Sending {
            batch,
            at,
            keys: keys.clone(),
        })?;
        self.send(InDoubt { batch, at, keys }, members).await
    }

    async fn send(&mut self, doubt: InDoubt, members: Vec<usize>) -> Result<(), Fail> {
        let body = json!({
            "items": members.iter().map(|&i| self.kind.item_body(&self.items[i])).collect::<Vec<_>>()
        });
        let key = self.idempotency_key(doubt.batch);
        let query = self.kind.create_query();
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let started = Instant::now();
        let mut backoff = Duration::from_secs(1);
        loop {
            let sent = self
                .api
                .call(
                    Method::POST,
                    &format!("/bulk/storage/{}s/create", self.kind.noun()),
                    &query,
                    Some(&body),
                    Some(&key),
                    Retry::Never,
                )
                .await;
            match sent {
                Ok(reply) => return self.accept(doubt.batch, &members, &reply.body),
                Err(ApiError::Status {
                    status: 401,
                    message,
                    ..
                }) => {
                    return Err(Fail::Api(format!(
                        "the token was refused while submitting: {message}"
                    )))
                }
                Err(ApiError::Status {
                    status,
                    code,
                    message,
                }) if status < 500 => {
                    let error = JobError { code, message };
                    let items = members
                        .iter()
                        .map(|&i| Submitted {
                            key: self.items[i].key.clone(),
                            job: None,
                            error: Some(error.clone()),
                        })
                        .collect();
                    self.journal.record(&Entry::Sent {
                        batch: doubt.batch,
                        items,
                    })?;
                    for &i in &members {
                        self.refuse(i, error.clone());
                    }
                    return Ok(());
                }
                Err(e) => {
                    if started.elapsed() > SUBMIT_RETRY_FOR {
                        return Err(Fail::Connection(format!(
                            "{e}; run the same command again to resume"
                        )));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    if self.adopt_found(&doubt).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Settles a batch an earlier run left in doubt: adopts the jobs the server has for it,
    /// or sends it again, under the same Idempotency-Key, when none arrived.
    async fn settle_in_doubt(&mut self, doubt: InDoubt) -> Result<(), Fail> {
        if self.adopt_found(&doubt).await? {
            return Ok(());
        }
        let members: Vec<usize> = doubt
            .keys
            .iter()
            .filter_map(|k| self.index.get(k).copied())
            .collect();
        if members.len() == doubt.keys.len() {
            // The same items in the same order: the same request as before.
            return self.send(doubt, members).await;
        }
        // The plan changed since (a file went away): what is left goes out as a new batch.
        self.queue.extend(members);
        Ok(())
    }

    /// Looks for the batch's jobs among the newest on the server. When some are there, they
    /// are adopted (recorded as the batch's answer) and the rest are queued again.
    async fn adopt_found(&mut self, doubt: &InDoubt) -> Result<bool, Fail> {
        let found = self.find_jobs(doubt).await?;
        if found.is_empty() {
            return Ok(false);
        }
        let mut items = Vec::new();
        for key in &doubt.keys {
            let Some(&i) = self.index.get(key) else {
                continue;
            };
            match found.get(key) {
                Some(job) => {
                    items.push(Submitted {
                        key: key.clone(),
                        job: Some(job.clone()),
                        error: None,
                    });
                    self.inflight.push(Inflight {
                        job: job.clone(),
                        item: i,
                        since: Instant::now(),
                    });
                }
                None => self.queue.push_front(i),
            }
        }
        self.journal.record(&Entry::Sent {
            batch: doubt.batch,
            items,
        })?;
        Ok(true)
    }

    /// The server's jobs for a batch's items, made since it was sent: the job listing is read
    /// from its newest end until it reaches jobs older than the batch.
    async fn find_jobs(&self, doubt: &InDoubt) -> Result<HashMap<String, String>, Fail> {
        let wanted: HashSet<&String> = doubt.keys.iter().collect();
        let filters = vec![("volume", self.kind.volume().to_string())];
        let mut query: Vec<(&str, String)> = filters.clone();
        query.push(("limit", "1".into()));
        let first = self.list(&query).await?;
        let mut end = first.total.unwrap_or(0);
        let since = doubt.at - CLOCK_SLACK_MS;
        let mut found = HashMap::new();
        while end > 0 {
            let start = end.saturating_sub(BATCH as u64);
            let mut query = filters.clone();
            query.push(("offset", start.to_string()));
            query.push(("limit", (end - start).to_string()));
            let page = self.list(&query).await?;
            let jobs = page.body["items"].as_array().cloned().unwrap_or_default();
            let mut older = false;
            for job in jobs.iter().rev() {
                let id = job["id"].as_str().unwrap_or_default();
                let before_batch = created_ms(job).is_some_and(|t| t < since);
                older |= before_batch;
                if before_batch {
                    continue;
                }
                let key = self.kind.job_key(job, &self.index, &self.items);
                let key = key.filter(|k| wanted.contains(k) && !self.is_known_job(k, id));
                if let Some(key) = key {
                    found.entry(key).or_insert_with(|| id.to_string());
                }
            }
            if older {
                break;
            }
            end = start;
        }
        Ok(found)
    }

    /// Whether the journal or this run already names this job for this item: such a job is an
    /// earlier attempt, never a lost batch's answer.
    fn is_known_job(&self, key: &str, id: &str) -> bool {
        let journal = match self.known.get(key) {
            Some(Known::Running { job } | Known::Ended { job, .. }) => job == id,
            _ => false,
        };
        let Some(&i) = self.index.get(key) else {
            return journal;
        };
        let ended = matches!(&self.outcomes[i], Some(Outcome::Ended { job, .. }) if job == id);
        journal || ended || self.inflight.iter().any(|f| f.item == i && f.job == id)
    }

    async fn list(&self, query: &[(&str, String)]) -> Result<crate::api::Reply, Fail> {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.list_jobs(&query)
            .await
            .map_err(|e| Fail::from_api("listing the jobs", e))
    }

    /// One page of the caller's jobs of this kind.
    async fn list_jobs(&self, query: &[(&str, &str)]) -> Result<crate::api::Reply, ApiError> {
        self.api
            .get(&format!("/storage/{}s", self.kind.noun()), query)
            .await
    }

    /// Records the answer to a bulk create: a job or an error per item, in order.
    fn accept(&mut self, batch: u64, members: &[usize], body: &Value) -> Result<(), Fail> {
        let answers = body["items"]
            .as_array()
            .filter(|a| a.len() == members.len());
        let Some(answers) = answers else {
            return Err(Fail::Api(format!(
                "the server answered a bulk create of {} items with something else: {body}",
                members.len()
            )));
        };
        let mut items = Vec::with_capacity(members.len());
        for (&i, answer) in members.iter().zip(answers) {
            let key = self.items[i].key.clone();
            match answer["resource"]["id"].as_str() {
                Some(job) => {
                    self.inflight.push(Inflight {
                        job: job.to_string(),
                        item: i,
                        since: Instant::now(),
                    });
                    items.push(Submitted {
                        key,
                        job: Some(job.to_string()),
                        error: None,
                    });
                }
                None => {
                    let error = job_error(&answer["error"]);
                    self.refuse(i, error.clone());
                    items.push(Submitted {
                        key,
                        job: None,
                        error: Some(error),
                    });
                }
            }
        }
        self.journal.record(&Entry::Sent { batch, items })
    }

    fn refuse(&mut self, item: usize, error: JobError) {
        self.outcomes[item] = Some(Outcome::Refused(error));
        self.progress.ended(self.items[item].bytes, true);
    }

    /// Counts the volume's unfinished jobs (while the server will) and decides with
    /// [`endings_to_find`] what this round asks about.
    async fn round_plan(&mut self, round: u64) -> Result<Option<usize>, Fail> {
        let unfinished = if self.counts_work {
            self.count_unfinished().await?
        } else {
            None
        };
        self.counts_work = unfinished.is_some();
        let tenth = round.is_multiple_of(FULL_ROUND_EVERY);
        Ok(endings_to_find(self.inflight.len(), unfinished, tenth))
    }

    /// How many of the caller's jobs on the volume are PENDING or RUNNING: the total of a
    /// one-item list. `None` when the server will not count them that way: it refuses the
    /// query, or the job it lists is neither (it ignored the state filter).
    async fn count_unfinished(&self) -> Result<Option<u64>, Fail> {
        let query = [
            ("volume", self.kind.volume()),
            ("state", "PENDING"),
            ("state", "RUNNING"),
            ("limit", "1"),
        ];
        let reply = match self.list_jobs(&query).await {
            Ok(reply) => reply,
            Err(ApiError::Status { status, .. }) if (400..500).contains(&status) => {
                return Ok(None)
            }
            Err(e) => return Err(Fail::from_api("counting the unfinished jobs", e)),
        };
        let listed = reply.body["items"]
            .as_array()
            .and_then(|items| items.first());
        let filtered =
            listed.is_none_or(|job| matches!(job["state"].as_str(), Some("PENDING" | "RUNNING")));
        Ok(reply.total.filter(|_| filtered))
    }

    /// Asks about unfinished jobs, oldest first, 100 per request. Jobs run in about the order
    /// they were submitted, so a round stops at the first group not all done once it has found
    /// the endings the count announced.
    async fn poll(&mut self, round: u64) -> Result<(), Fail> {
        let Some(to_find) = self.round_plan(round).await? else {
            return Ok(());
        };
        let mut ended_jobs: HashSet<String> = HashSet::new();
        let mut start = 0;
        while start < self.inflight.len() {
            let end = (start + BATCH).min(self.inflight.len());
            let ids: Vec<&str> = self.inflight[start..end]
                .iter()
                .map(|f| f.job.as_str())
                .collect();
            let reply = self
                .api
                .post(
                    &format!("/bulk/storage/{}s/get", self.kind.noun()),
                    &json!({ format!("{}_ids", self.kind.noun()): ids }),
                )
                .await
                .map_err(|e| Fail::from_api("polling the jobs", e))?;
            let answers = reply.body["items"].as_array().cloned().unwrap_or_default();
            let mut ended = Vec::new();
            for (f, answer) in self.inflight[start..end].iter().zip(&answers) {
                let (state, error) = match &answer["resource"] {
                    Value::Object(job) => {
                        let state = job.get("state").and_then(Value::as_str).unwrap_or_default();
                        if matches!(state, "PENDING" | "RUNNING" | "") {
                            continue;
                        }
                        let error = job.get("error").filter(|e| !e.is_null()).map(job_error);
                        (state.to_string(), error)
                    }
                    _ => ("FAILED".to_string(), Some(job_error(&answer["error"]))),
                };
                ended.push(Ended {
                    key: self.items[f.item].key.clone(),
                    job: f.job.clone(),
                    state,
                    error,
                });
            }
            let all_ended = ended.len() == end - start;
            if !ended.is_empty() {
                self.journal.record(&Entry::Ended {
                    jobs: ended.clone(),
                })?;
            }
            for e in ended {
                let i = self.index[&e.key];
                let failed = e.state != "COMPLETED";
                self.progress.ended(self.items[i].bytes, failed);
                ended_jobs.insert(e.job.clone());
                self.outcomes[i] = Some(Outcome::Ended {
                    job: e.job,
                    state: e.state,
                    error: e.error,
                    before: false,
                });
            }
            if !all_ended && ended_jobs.len() >= to_find {
                break;
            }
            start = end;
        }
        self.inflight.retain(|f| !ended_jobs.contains(&f.job));
        Ok(())
    }

    fn rows(self) -> Vec<Row> {
        self.items
            .into_iter()
            .zip(self.outcomes)
            .map(|(item, outcome)| match outcome {
                Some(Outcome::Ended {
                    job,
                    state,
                    error,
                    before,
                }) => Row {
                    item,
                    job: Some(job),
                    state,
                    error,
                    before,
                },
                Some(Outcome::Refused(error)) => Row {
                    item,
                    job: None,
                    state: "FAILED".into(),
                    error: Some(error),
                    before: false,
                },
                None => Row {
                    item,
                    job: None,
                    state: "FAILED".into(),
                    error: Some(JobError {
                        code: 0,
                        message: "not submitted".into(),
                    }),
                    before: false,
                },
            })
            .collect()
    }
}

/// How many ended jobs a polling round should find before it stops asking (`None`: it asks
/// nothing), given this run's unfinished jobs and the server's count of the volume's
/// unfinished jobs (`None` when it will not count them). Bulk gets go out only once some of
/// this run's jobs must have ended, and only for as many groups as hold them.
///
/// The count also holds other runs' jobs on the volume, which can hide endings but never
/// invent them, so every tenth round looks at the oldest group anyway. Without counts, each
/// round looks at the oldest group and every tenth at every job.
fn endings_to_find(inflight: usize, unfinished: Option<u64>, tenth: bool) -> Option<usize> {
    match unfinished {
        Some(unfinished) => {
            let ended = inflight.saturating_sub(usize::try_from(unfinished).unwrap_or(usize::MAX));
            (ended > 0 || tenth).then_some(ended)
        }
        None => Some(if tenth { inflight } else { 0 }),
    }
}

fn job_error(e: &Value) -> JobError {
    JobError {
        code: e["code"].as_i64().unwrap_or(0),
        message: e["message"].as_str().unwrap_or("no message").to_string(),
    }
}

fn created_ms(job: &Value) -> Option<i64> {
    let s = job["created_on"].as_str()?;
    Some(
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()?
            .timestamp_millis(),
    )
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::endings_to_find;

    #[test]
    fn polls_ask_only_once_the_count_announces_endings() {
        // 300 in flight, 300 unfinished on the volume: nothing can have ended.
        assert_eq!(endings_to_find(300, Some(300), false), None);
        // Others' jobs on the volume can hide endings; a tenth round looks at the oldest group.
        assert_eq!(endings_to_find(300, Some(450), false), None);
        assert_eq!(endings_to_find(300, Some(450), true), Some(0));
        // 150 of 300 ended: ask until 150 are found.
        assert_eq!(endings_to_find(300, Some(150), false), Some(150));
        // None unfinished: every job has ended.
        assert_eq!(endings_to_find(300, Some(0), false), Some(300));
    }

    #[test]
    fn without_counts_polls_ask_the_oldest_group_and_every_tenth_round_all() {
        assert_eq!(endings_to_find(300, None, false), Some(0));
        assert_eq!(endings_to_find(300, None, true), Some(300));
    }
}
