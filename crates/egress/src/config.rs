//! The settings of `egress serve`, defined once: each field's flag, environment variable,
//! default and help text come from its `#[arg]` and doc comment, and `Config::normalize`
//! applies every bound. The CLI, `Config::new` (tests) and the README table all derive from
//! these definitions.

use clap::{Args, CommandFactory, FromArgMatches, Parser};
use egress_engine::config::{at_least, secs};
use egress_engine::EngineConfig;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Run the API server.
#[derive(Debug, Clone, Parser)]
#[command(name = "serve")]
pub struct Config {
    /// Address to serve on
    #[arg(
        long,
        env = "EGRESS_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,
    #[command(flatten)]
    pub store: StoreConfig,
    /// Where file bytes live: `s3://bucket/prefix?endpoint=…&region=…`, with credentials from
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` [default: a folder in
    /// the data dir]
    #[arg(long, env = "EGRESS_PLATFORM_STORAGE", value_name = "URL")]
    pub platform_storage: Option<String>,
    /// Base of every `href` [default: `http://<listen>`]
    #[arg(long, env = "EGRESS_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// File holding the 64-hex-character server key; `EGRESS_SECRET_KEY` may hold the key
    /// itself. Nodes of one cluster share it [default: a generated `secret.key` (0600) in the
    /// data dir]
    #[arg(long, env = "EGRESS_SECRET_KEY_FILE", value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Requests per user per rate-limit window; `GET /v2/rate_limit` is not counted
    #[arg(
        long,
        env = "EGRESS_RATE_LIMIT",
        value_name = "N",
        default_value_t = 1000
    )]
    pub rate_limit: u32,
    /// Length of the rate-limit window, in seconds; at least 1
    #[arg(
        long = "rate-limit-window",
        env = "EGRESS_RATE_LIMIT_WINDOW",
        value_name = "SECS",
        value_parser = secs,
        default_value = "300"
    )]
    pub rate_window: Duration,
    /// Largest JSON request body, in bytes
    #[arg(
        long,
        env = "EGRESS_BODY_LIMIT",
        value_name = "BYTES",
        default_value_t = 1024 * 1024
    )]
    pub body_limit: usize,
    /// Seconds a connection may take to send a whole request head, after opening or after its
    /// previous response (so also how long an idle keep-alive connection stays open); at least 1
    #[arg(
        long = "header-read-timeout-secs",
        env = "EGRESS_HEADER_READ_TIMEOUT_SECS",
        value_name = "SECS",
        value_parser = secs,
        default_value = "30"
    )]
    pub header_read_timeout: Duration,
    /// Connections open at once; past it new ones wait in the listen backlog until one closes.
    /// At least 1
    #[arg(
        long,
        env = "EGRESS_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 4096
    )]
    pub max_connections: usize,
    /// Seconds an idle unfinished upload is kept before it is swept
    #[arg(
        long,
        env = "EGRESS_UPLOAD_TTL",
        value_name = "SECS",
        value_parser = secs,
        default_value = "86400"
    )]
    pub upload_ttl: Duration,
    /// Seconds a signed download or upload-part URL stays valid
    #[arg(
        long,
        env = "EGRESS_URL_TTL",
        value_name = "SECS",
        value_parser = secs,
        default_value = "3600"
    )]
    pub url_ttl: Duration,
    /// Seconds between sweeps that free unreferenced platform bytes (commits also wake the
    /// sweeper); at least 1
    #[arg(
        long,
        env = "EGRESS_SWEEP_INTERVAL",
        value_name = "SECS",
        value_parser = secs,
        default_value = "30"
    )]
    pub sweep_interval: Duration,
    /// Log lines as JSON; the filter comes from `EGRESS_LOG` (default `info`)
    #[arg(long, env = "EGRESS_LOG_JSON")]
    pub log_json: bool,
    /// Create a demo user, project and local volume on first start, and print commands to try
    #[arg(long, env = "EGRESS_DEMO")]
    pub demo: bool,
    #[command(flatten)]
    pub volume_policy: VolumeConfig,
    #[command(flatten)]
    pub engine: EngineConfig,

    /// Longest time one request may take.
    #[arg(skip = Duration::from_secs(300))]
    pub request_timeout: Duration,
}

/// Where the state lives; `egress admin` takes these flags too.
#[derive(Debug, Clone, Args)]
pub struct StoreConfig {
    /// Where Egress keeps its state: database file, platform files, server key
    #[arg(
        long,
        env = "EGRESS_DATA_DIR",
        value_name = "DIR",
        default_value = "./egress-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// `postgres://…` selects Postgres [default: a SQLite file in the data dir]
    #[arg(long, env = "EGRESS_DATABASE_URL", value_name = "URL", global = true)]
    pub database_url: Option<String>,
}

impl StoreConfig {
    /// The database URL in effect.
    pub fn url(&self) -> String {
        database_url(&self.data_dir, self.database_url.as_deref())
    }
}

/// `database_url` if given, else the SQLite file in `data_dir`.
pub fn database_url(data_dir: &Path, database_url: Option<&str>) -> String {
    database_url
        .map(str::to_string)
        .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("egress.db").display()))
}

/// Which volumes users may create. The server adds its own folders, which no local volume may
/// overlap, when it starts.
#[derive(Debug, Clone, Args)]
pub struct VolumeConfig {
    /// URL prefix of an endpoint volumes may use (S3, OSS, GCS, Azure); repeatable,
    /// comma-separated in the environment. Given, it replaces every default [default: each
    /// cloud's own hosts over https only]
    #[arg(
        long = "allow-endpoint",
        env = "EGRESS_ALLOW_ENDPOINTS",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub allow_endpoints: Vec<String>,
    /// A folder volumes of type `local` may live in; repeatable, comma-separated in the
    /// environment. Only platform administrators create local volumes, inside a declared folder
    /// and never overlapping the data dir, platform storage or key file [default: none, so local
    /// volumes are off; with `--demo`, the demo's folder]
    #[arg(
        long = "local-volume-root",
        env = "EGRESS_LOCAL_VOLUME_ROOTS",
        value_name = "DIR",
        value_delimiter = ','
    )]
    pub local_roots: Vec<PathBuf>,
    /// Endpoint of S3 volumes whose body names none (the official client's helpers never send
    /// one); the allowlist applies to it too
    #[arg(
        long = "s3-default-endpoint",
        env = "EGRESS_S3_DEFAULT_ENDPOINT",
        value_name = "URL",
        default_value = "https://s3.amazonaws.com"
    )]
    pub s3_default_endpoint: String,
    /// STS endpoint where Egress assumes the IAM roles of S3 volumes, with its own identity from
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` (without one, such
    /// volumes are refused)
    #[arg(
        long = "sts-endpoint",
        env = "EGRESS_STS_ENDPOINT",
        value_name = "URL",
        default_value = "https://sts.amazonaws.com"
    )]
    pub sts_endpoint: String,
    /// Endpoint of GCS volumes whose body names none (`root_url`); the allowlist applies to it
    /// too
    #[arg(
        long = "gcs-default-endpoint",
        env = "EGRESS_GCS_DEFAULT_ENDPOINT",
        value_name = "URL",
        default_value = "https://storage.googleapis.com"
    )]
    pub gcs_default_endpoint: String,
    /// Where Azure volumes' applications (tenant id, client id, client secret) sign in
    #[arg(
        long = "azure-authority-host",
        env = "EGRESS_AZURE_AUTHORITY_HOST",
        value_name = "URL",
        default_value = "https://login.microsoftonline.com"
    )]
    pub azure_authority_host: String,
    /// `ACCOUNT=KEY`: a storage account whose shared key the server holds; Azure volumes on it
    /// sign with the key instead of their client secret. For Azurite and development only: any
    /// user may then read that account. Repeatable, comma-separated in the environment
    /// [default: none]
    #[arg(
        long = "azure-shared-key",
        env = "EGRESS_AZURE_SHARED_KEYS",
        value_name = "ACCOUNT=KEY",
        value_delimiter = ','
    )]
    pub azure_shared_keys: Vec<String>,
}

impl Config {
    /// The defaults, as `egress serve --listen <listen> --data-dir <data_dir>` would have them
    /// with no `EGRESS_*` variable set.
    pub fn new(listen: &str, data_dir: impl Into<PathBuf>) -> Self {
        let args: [OsString; 5] = [
            "serve".into(),
            "--listen".into(),
            listen.into(),
            "--data-dir".into(),
            data_dir.into().into(),
        ];
        let matches = Config::command()
            .mut_args(|arg| arg.env(None::<&str>))
            .try_get_matches_from(args)
            .expect("the defaults parse");
        Config::from_arg_matches(&matches).expect("the defaults parse")
    }

    /// Raises every setting below its lower bound to that bound (with a warning), and drops
    /// empty endpoint prefixes (`EGRESS_ALLOW_ENDPOINTS=`). `server::start` calls it, so a
    /// `Config` built in code gets the same checks as one from the command line.
    pub fn normalize(&mut self) {
        at_least(
            "--rate-limit-window",
            &mut self.rate_window,
            Duration::from_secs(1),
        );
        at_least(
            "--header-read-timeout-secs",
            &mut self.header_read_timeout,
            Duration::from_secs(1),
        );
        at_least("--max-connections", &mut self.max_connections, 1);
        at_least(
            "--sweep-interval",
            &mut self.sweep_interval,
            Duration::from_secs(1),
        );
        self.volume_policy.allow_endpoints.retain(|e| !e.is_empty());
        self.engine.normalize();
    }
}

/// The README's configuration table, rendered from the flag definitions: one row per flag with
/// its environment variable, its default (clap's, or the `[default: …]` its help ends with) and
/// its help.
pub fn markdown_table() -> String {
    let mut command = Config::command();
    command.build();
    let mut table = String::from("| flag | default | meaning |\n|---|---|---|\n");
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_hide_set() || matches!(long, "help" | "version") {
            continue;
        }
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        let (meaning, default) = match help.rsplit_once(" [default: ") {
            Some((meaning, default)) => (meaning.to_string(), default.trim_end_matches(']').into()),
            None => (help.clone(), String::new()),
        };
        let default = if !takes_value {
            "off".to_string()
        } else if let Some(value) = arg.get_default_values().first() {
            let value = value.to_string_lossy();
            let bytes = arg
                .get_value_names()
                .is_some_and(|names| names.iter().any(|n| n == "BYTES"));
            match value.parse::<u64>() {
                Ok(n) if bytes => human_bytes(n),
                Ok(_) => value.to_string(),
                Err(_) => format!("`{value}`"),
            }
        } else {
            assert!(
                !default.is_empty(),
                "--{long}: say its default in its help as [default: …]"
            );
            default
        };
        let value = match arg.get_value_names() {
            Some(names) if takes_value => format!(" {}", names.join(" ")),
            _ => String::new(),
        };
        let env = arg
            .get_env()
            .map(|e| format!(", `{}`", e.to_string_lossy()))
            .unwrap_or_default();
        table.push_str(&format!(
            "| `--{long}{value}`{env} | {default} | {meaning} |\n"
        ));
    }
    table
}

/// `16 MiB` for 16777216; a count that is no whole number of KiB stays as it is.
fn human_bytes(n: u64) -> String {
    let units = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    units
        .iter()
        .find(|(size, _)| n >= *size && n.is_multiple_of(*size))
        .map(|(size, unit)| format!("{} {unit}", n / size))
        .unwrap_or_else(|| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_gives_the_flag_defaults() {
        let c = Config::new("127.0.0.1:0", "/tmp/d");
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.store.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(c.store.url(), "sqlite:/tmp/d/egress.db");
        assert_eq!(c.rate_limit, 1000);
        assert_eq!(c.rate_window, Duration::from_secs(300));
        assert_eq!(c.body_limit, 1024 * 1024);
        assert_eq!(c.header_read_timeout, Duration::from_secs(30));
        assert_eq!(c.max_connections, 4096);
        assert_eq!(c.upload_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(c.url_ttl, Duration::from_secs(3600));
        assert_eq!(c.sweep_interval, Duration::from_secs(30));
        assert_eq!(c.request_timeout, Duration::from_secs(300));
        assert!(!c.demo && !c.log_json);
        assert!(
            c.volume_policy.allow_endpoints.is_empty() && c.volume_policy.local_roots.is_empty()
        );
        let e = &c.engine;
        assert_eq!(
            (e.workers, e.max_workers_per_volume, e.volume_cap()),
            (16, 0, 14)
        );
        assert_eq!(e.lease, Duration::from_secs(30));
        assert_eq!(e.multipart_cutoff, 5 << 30);
        assert_eq!(e.part_size, 16 << 20);
        assert_eq!((e.part_parallelism, e.memory_budget), (4, 512 << 20));
        assert_eq!(e.max_attempts, 8);
        assert_eq!(e.retry_base, Duration::from_millis(500));
        assert_eq!(e.retry_cap, Duration::from_secs(60));
        assert_eq!(e.poll, Duration::from_millis(500));
        assert_eq!(e.shutdown_grace, Duration::from_secs(30));
        assert_eq!(e.stall_timeout, Duration::from_secs(120));
        assert!(e.run_jobs);
    }

    #[test]
    fn flags_parse_into_the_same_fields() {
        let c = Config::try_parse_from([
            "serve",
            "--rate-limit-window",
            "60",
            "--retry-base-ms",
            "250",
            "--allow-endpoint",
            "http://a,http://b",
            "--allow-endpoint",
            "http://c",
            "--workers",
            "3",
        ])
        .unwrap();
        assert_eq!(c.rate_window, Duration::from_secs(60));
        assert_eq!(c.engine.retry_base, Duration::from_millis(250));
        assert_eq!(
            c.volume_policy.allow_endpoints,
            ["http://a", "http://b", "http://c"]
        );
        assert_eq!(c.engine.workers, 3);
    }

    #[test]
    fn normalize_raises_values_below_their_bounds() {
        let mut c = Config::try_parse_from([
            "serve",
            "--rate-limit-window",
            "0",
            "--header-read-timeout-secs",
            "0",
            "--max-connections",
            "0",
            "--sweep-interval",
            "0",
            "--workers",
            "0",
            "--stall-timeout-secs",
            "0",
            "--part-size",
            "1024",
            "--lease-secs",
            "0",
            "--max-attempts=-3",
            "--retry-base-ms",
            "0",
            "--allow-endpoint",
            "",
        ])
        .unwrap();
        c.normalize();
        assert_eq!(c.rate_window, Duration::from_secs(1));
        assert_eq!(c.header_read_timeout, Duration::from_secs(1));
        assert_eq!(c.max_connections, 1);
        assert_eq!(c.sweep_interval, Duration::from_secs(1));
        assert!(c.volume_policy.allow_endpoints.is_empty());
        let e = &c.engine;
        assert_eq!(e.workers, 1);
        assert_eq!(e.stall_timeout, Duration::from_secs(1));
        assert_eq!(e.part_size, 5 << 20);
        assert_eq!(e.lease, Duration::from_secs(1));
        assert_eq!(e.max_attempts, 1);
        assert_eq!(e.retry_base, Duration::from_millis(1));

        // Values in range are left alone.
        let mut d = Config::new("127.0.0.1:0", "/tmp/d");
        d.normalize();
        assert_eq!(
            format!("{d:?}"),
            format!("{:?}", Config::new("127.0.0.1:0", "/tmp/d"))
        );
    }

    #[test]
    fn readme_table_matches_the_flags() {
        let expected = markdown_table();
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .expect("README has a Configuration section");
        let table: String = section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            table == expected,
            "README.md's configuration table differs from the flags; replace it with:\n\n{expected}"
        );
    }
}
