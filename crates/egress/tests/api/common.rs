use egress::server::{self, Config, Running};
use egress_core::util::{now_ms, token_hash};
use egress_store::User;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub struct TestServer {
    pub running: Running,
    pub base: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), tune).await
    }

    async fn start_in(dir: tempfile::TempDir, tune: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::new("127.0.0.1:0", dir.path());
        tune(&mut config);
        let running = server::start(config).await.unwrap();
        let base = format!("http://{}", running.addr);
        Self {
            running,
            base,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// A server whose local volumes may live in a fresh folder (returned, kept alive by the
    /// caller), with ann, a platform administrator (only they make local volumes), owning project
    /// `ann/p`. Returns the server, ann's token and the folder.
    pub async fn with_local_root() -> (Self, String, tempfile::TempDir) {
        let root = tempfile::tempdir().unwrap();
        let declared = root.path().to_path_buf();
        let s = Self::start_with(|c| {
            c.volume_policy.local_roots = vec![declared];
            c.engine.poll = std::time::Duration::from_millis(50);
        })
        .await;
        let t = s.admin("ann").await;
        s.project(&t, "p").await;
        (s, t, root)
    }

    /// Stops this server and starts another on the same data dir (its store, platform files
    /// and key): with `engine.run_jobs = false` first, jobs stay queued until the restart runs
    /// them.
    pub async fn restart_with(self, tune: impl FnOnce(&mut Config)) -> Self {
        let Self { running, _dir, .. } = self;
        running.stop().await.unwrap();
        Self::start_in(_dir, tune).await
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Creates a user and returns its token.
    pub async fn user(&self, name: &str) -> String {
        self.user_with(name, false).await
    }

    /// Creates a platform administrator and returns its token.
    pub async fn admin(&self, name: &str) -> String {
        self.user_with(name, true).await
    }

    async fn user_with(&self, name: &str, is_admin: bool) -> String {
        let token = egress_core::util::new_token();
        self.user_with_token(name, &token, is_admin).await;
        token
    }

    /// Creates a user whose token is `token`.
    pub async fn user_with_token(&self, name: &str, token: &str, is_admin: bool) {
        let user = User {
            username: name.into(),
            email: format!("{name}@example.org"),
            is_admin,
            created_at: now_ms(),
        };
        self.running
            .state
            .store
            .create_user(&user, &token_hash(token))
            .await
            .unwrap();
    }

    pub async fn call(
        &self,
        method: Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self
            .http
            .request(method, url)
            .header("X-SBG-Auth-Token", token);
        // The official client sends a JSON `null` body even on GET.
        req = req
            .header("content-type", "application/json")
            .body(match body {
                Some(b) => b.to_string(),
                None => "null".to_string(),
            });
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, token: &str, path: &str) -> Reply {
        self.call(Method::GET, token, path, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Reply {
        self.call(Method::POST, token, path, Some(body)).await
    }

    /// Creates a project and returns its JSON.
    pub async fn project(&self, token: &str, name: &str) -> Value {
        let r = self
            .post(token, "/v2/projects", json!({"name": name}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body
    }

    /// Uploads `bytes` as one file through the multipart protocol and returns the file JSON.
    pub async fn upload(&self, token: &str, project: &str, name: &str, bytes: &[u8]) -> Value {
        let id = self
            .upload_parts(token, "/v2/upload/multipart", project, name, bytes)
            .await;
        let done = self
            .call(
                Method::POST,
                token,
                &format!("/v2/upload/multipart/{id}/complete"),
                None,
            )
            .await;
        assert_eq!(done.status, 200, "{:?}", done.body);
        done.body
    }

    /// Starts an upload at `init_path` (which may carry `?overwrite=true`) and sends every part;
    /// returns the upload id, for the caller to complete.
    pub async fn upload_parts(
        &self,
        token: &str,
        init_path: &str,
        project: &str,
        name: &str,
        bytes: &[u8],
    ) -> String {
        let init = self
            .post(token, init_path, json!({"project": project, "name": name, "size": bytes.len(), "part_size": 5 * 1024 * 1024}))
            .await;
        assert_eq!(init.status, 200, "{:?}", init.body);
        let id = init.body["upload_id"].as_str().unwrap().to_string();
        let part_size = init.body["part_size"].as_u64().unwrap() as usize;
        let chunks: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[]]
        } else {
            bytes.chunks(part_size).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let n = i + 1;
            let url = self
                .get(token, &format!("/v2/upload/multipart/{id}/part/{n}"))
                .await
                .body["url"]
                .as_str()
                .unwrap()
                .to_string();
            let put = self
                .http
                .put(&url)
                .body(chunk.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(put.status(), 200);
            let etag = put.headers()["etag"]
                .to_str()
                .unwrap()
                .trim_matches('"')
                .to_string();
            let report = self
                .post(
                    token,
                    &format!("/v2/upload/multipart/{id}/part/"),
                    json!({"part_number": n, "response": {"headers": {"ETag": etag}}}),
                )
                .await;
            assert_eq!(report.status, 200, "{:?}", report.body);
        }
        id
    }

    /// Waits for a job (`/v2/storage/exports/{id}` or `/v2/storage/imports/{id}`) to be
    /// COMPLETED or FAILED, and returns it; fails the test if it never ends.
    pub async fn finished(&self, token: &str, path: &str) -> Value {
        let mut ends = self.job_ends();
        let deadline = tokio::time::Instant::now() + JOB_DEADLINE;
        while tokio::time::Instant::now() < deadline {
            ends.mark_unchanged();
            let r = self.get(token, path).await;
            if is_finished(&r.body) {
                return r.body;
            }
            self.job_progress(&mut ends).await;
        }
        panic!("{path} did not finish");
    }

    /// Waits for every export in `ids` to be COMPLETED or FAILED, and returns them in order.
    pub async fn finished_exports<Id>(&self, token: &str, ids: &[Id]) -> Vec<Value>
    where
        Id: Clone + Into<Value> + std::fmt::Debug,
    {
        let ids: Vec<Value> = ids.iter().cloned().map(Into::into).collect();
        let mut ends = self.job_ends();
        let deadline = tokio::time::Instant::now() + JOB_DEADLINE;
        while tokio::time::Instant::now() < deadline {
            ends.mark_unchanged();
            let r = self
                .post(
                    token,
                    "/v2/bulk/storage/exports/get",
                    json!({"export_ids": ids}),
                )
                .await;
            let jobs = bulk_values(&r.body, "/resource");
            if jobs.len() == ids.len() && jobs.iter().all(is_finished) {
                return jobs;
            }
            self.job_progress(&mut ends).await;
        }
        panic!("exports {ids:?} did not finish");
    }

    /// Submits an import (`body` as the API takes it) and returns the job once it has ended.
    pub async fn import_finished(&self, token: &str, body: Value) -> Value {
        let r = self.post(token, "/v2/storage/imports", body).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let id = r.body["id"].as_str().unwrap();
        self.finished(token, &format!("/v2/storage/imports/{id}"))
            .await
    }

    /// The locations of the objects and the sub-folder prefixes at the root of `volume`.
    pub async fn volume_root(&self, token: &str, volume: &str) -> (Vec<String>, Vec<String>) {
        let list = self
            .get(token, &format!("/v2/storage/volumes/{volume}/list"))
            .await;
        assert_eq!(list.status, 200, "{:?}", list.body);
        let strings = |key: &str, field: &str| -> Vec<String> {
            list.body[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i[field].as_str().unwrap().to_string())
                .collect()
        };
        (strings("items", "location"), strings("prefixes", "prefix"))
    }

    /// Imports `location` from `volume` into `project`, checks that the new file downloads as
    /// `want`, whole and in `range`, and returns the file's id.
    pub async fn import_and_read_back(
        &self,
        token: &str,
        volume: &str,
        project: &str,
        location: &str,
        want: &[u8],
        range: std::ops::RangeInclusive<usize>,
    ) -> String {
        let job = self
            .import_finished(
                token,
                json!({"source": {"volume": volume, "location": location},
                "destination": {"project": project}}),
            )
            .await;
        assert_eq!(job["state"], "COMPLETED", "{job:?}");
        let file = job["result"]["id"].as_str().unwrap().to_string();
        let got = self
            .download(token, &file, None)
            .await
            .bytes()
            .await
            .unwrap();
        assert!(got.as_ref() == want, "{location}: the bytes differ");
        let header = format!("bytes={}-{}", range.start(), range.end());
        let part = self.download(token, &file, Some(&header)).await;
        assert_eq!(part.status(), 206);
        assert_eq!(part.bytes().await.unwrap().as_ref(), &want[range]);
        file
    }

    fn job_ends(&self) -> tokio::sync::watch::Receiver<u64> {
        self.running.state.services.job_ends.subscribe()
    }

    /// Returns once jobs may have moved on: a job ended in this server, or a second passed (a
    /// job may end on another node, or through a request rather than a worker).
    async fn job_progress(&self, ends: &mut tokio::sync::watch::Receiver<u64>) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), ends.changed()).await;
    }

    /// Makes `username` a member of a project or volume (`members_path`) with `permissions`.
    pub async fn add_member(
        &self,
        token: &str,
        members_path: &str,
        username: &str,
        permissions: Value,
    ) {
        let r = self
            .post(
                token,
                members_path,
                json!({"username": username, "type": "USER", "permissions": permissions}),
            )
            .await;
        assert_eq!(r.status, 200, "{members_path}: {:?}", r.body);
    }

    /// Downloads a file through its signed URL, with an optional Range header.
    pub async fn download(
        &self,
        token: &str,
        file_id: &str,
        range: Option<&str>,
    ) -> reqwest::Response {
        let info = self
            .get(token, &format!("/v2/files/{file_id}/download_info"))
            .await;
        assert_eq!(info.status, 200, "{:?}", info.body);
        let mut req = self.http.get(info.body["url"].as_str().unwrap());
        if let Some(r) = range {
            req = req.header("range", r);
        }
        req.send().await.unwrap()
    }

    /// Runs one sweep now instead of waiting for the background one.
    pub async fn sweep(&self) {
        egress_engine::sweeper::sweep_once(&self.running.state)
            .await
            .unwrap();
    }

    /// Every regular file under the platform storage folder, relative to it.
    pub fn stored_objects(&self) -> Vec<String> {
        let root = self.data_dir().join("platform");
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }
}

/// One value per entry of a bulk response's `items`, picked by a JSON pointer such as
/// `/resource/id` or `/error/code` (`Null` where the entry has none).
/// How long a test waits for jobs to end before it fails.
const JOB_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

fn is_finished(job: &Value) -> bool {
    // Exports and imports end COMPLETED or FAILED; async file jobs end FINISHED.
    job["state"] == "COMPLETED" || job["state"] == "FAILED" || job["state"] == "FINISHED"
}

pub fn bulk_values(body: &Value, pointer: &str) -> Vec<Value> {
    body["items"]
        .as_array()
        .expect("a bulk response has items")
        .iter()
        .map(|i| i.pointer(pointer).cloned().unwrap_or(Value::Null))
        .collect()
}

/// Asserts an SBG error body with this status and code.
pub fn assert_error(r: &Reply, status: u16, code: u64) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(r.body["status"], status, "{:?}", r.body);
    assert_eq!(r.body["code"], code, "{:?}", r.body);
    assert!(
        r.body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{:?}",
        r.body
    );
    assert!(r.body["more_info"].is_string(), "{:?}", r.body);
}
