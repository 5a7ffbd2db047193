//! The `egress` binary: `serve` runs the server; `admin` manages users and public projects
//! on the same store, even while a server runs.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use egress::server::{self, Config};
use egress::store::{StoreError, User};
use egress::util::{new_token, now_ms, token_hash};
use std::path::PathBuf;
use std::time::Duration;

/// mimalloc: the server allocates and frees many small buffers per request across threads,
/// where glibc's malloc spent about 15% of the CPU of an export run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "egress",
    version,
    about = "A Seven Bridges / CAVATICA v2 storage API server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Serve(ServeArgs),
    /// Manage users and projects directly in the store.
    Admin {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Args)]
struct StoreArgs {
    /// Where Egress keeps its state (database, platform files, server key).
    #[arg(
        long,
        env = "EGRESS_DATA_DIR",
        default_value = "./egress-data",
        global = true
    )]
    data_dir: PathBuf,
    /// `postgres://…` for Postgres; default: a SQLite file in the data dir.
    #[arg(long, env = "EGRESS_DATABASE_URL", global = true)]
    database_url: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "EGRESS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// `s3://bucket/prefix?endpoint=…&region=…` (credentials from AWS_* variables);
    /// default: a folder in the data dir.
    #[arg(long, env = "EGRESS_PLATFORM_STORAGE")]
    platform_storage: Option<String>,
    /// Base of every href; default `http://<listen>`.
    #[arg(long, env = "EGRESS_PUBLIC_URL")]
    public_url: Option<String>,
    /// File holding the 64-hex-character server key (or set EGRESS_SECRET_KEY).
    #[arg(long, env = "EGRESS_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
    /// Requests per user per rate-limit window.
    #[arg(long, env = "EGRESS_RATE_LIMIT", default_value_t = 1000)]
    rate_limit: u32,
    /// Length of the rate-limit window, in seconds.
    #[arg(long, env = "EGRESS_RATE_LIMIT_WINDOW", default_value_t = 300)]
    rate_limit_window: u64,
    /// Largest JSON request body, in bytes.
    #[arg(long, env = "EGRESS_BODY_LIMIT", default_value_t = 1024 * 1024)]
    body_limit: usize,
    /// Seconds a connection may take to send a whole request head (also how long an idle
    /// keep-alive connection stays open).
    #[arg(long, env = "EGRESS_HEADER_READ_TIMEOUT_SECS", default_value_t = 30)]
    header_read_timeout_secs: u64,
    /// Connections open at once; past it, new connections wait to be accepted.
    #[arg(long, env = "EGRESS_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Seconds an unfinished upload may stay idle before it is swept.
    #[arg(long, env = "EGRESS_UPLOAD_TTL", default_value_t = 24 * 3600)]
    upload_ttl: u64,
    /// Seconds a signed download or upload URL stays valid.
    #[arg(long, env = "EGRESS_URL_TTL", default_value_t = 3600)]
    url_ttl: u64,
    /// Seconds between sweeps of unreferenced bytes (commits also wake the sweeper).
    #[arg(long, env = "EGRESS_SWEEP_INTERVAL", default_value_t = 30)]
    sweep_interval: u64,
    /// Log lines as JSON.
    #[arg(long, env = "EGRESS_LOG_JSON")]
    log_json: bool,
    /// URL prefix of an S3 endpoint volumes may use (repeatable); default: AWS S3 over https only.
    #[arg(
        long = "allow-endpoint",
        env = "EGRESS_ALLOW_ENDPOINTS",
        value_delimiter = ','
    )]
    allow_endpoints: Vec<String>,
    /// A folder volumes of type `local` may live in (repeatable); only platform administrators
    /// create them. None: local volumes are off.
    #[arg(
        long = "local-volume-root",
        env = "EGRESS_LOCAL_VOLUME_ROOTS",
        value_delimiter = ','
    )]
    local_volume_roots: Vec<PathBuf>,
    /// Export jobs this process runs at once.
    #[arg(long, env = "EGRESS_WORKERS", default_value_t = 16)]
    workers: usize,
    /// Jobs one volume may run at once in this process; 0: three quarters of --workers, so a
    /// stalled volume always leaves workers to the others.
    #[arg(long, env = "EGRESS_MAX_WORKERS_PER_VOLUME", default_value_t = 0)]
    max_workers_per_volume: usize,
    /// Seconds a copy to S3 may move nothing (no answer, no part done) before the attempt is
    /// given up and retried.
    #[arg(long, env = "EGRESS_STALL_TIMEOUT_SECS", default_value_t = 120)]
    stall_timeout_secs: u64,
    /// Largest object copied with one server-side CopyObject; above it, multipart copy.
    #[arg(long, env = "EGRESS_MULTIPART_COPY_CUTOFF", default_value_t = 5 * 1024 * 1024 * 1024)]
    multipart_copy_cutoff: u64,
    /// Part size of multipart copies and streamed uploads (at least 5 MiB).
    #[arg(long, env = "EGRESS_PART_SIZE", default_value_t = 16 * 1024 * 1024)]
    part_size: u64,
    /// Seconds a claimed job's lease lasts; workers renew it while they copy.
    #[arg(long, env = "EGRESS_LEASE_SECS", default_value_t = 30)]
    lease_secs: u64,
    /// Attempts per job before a retryable failure becomes final.
    #[arg(long, env = "EGRESS_MAX_ATTEMPTS", default_value_t = 8)]
    max_attempts: i64,
    /// First retry delay in milliseconds; it doubles per attempt, with jitter, up to a minute.
    #[arg(long, env = "EGRESS_RETRY_BASE_MS", default_value_t = 500)]
    retry_base_ms: u64,
    /// On SIGTERM, seconds running copies may take to finish.
    #[arg(long, env = "EGRESS_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    shutdown_grace_secs: u64,
    /// Create a demo user and project on first start, and print commands to try.
    #[arg(long, env = "EGRESS_DEMO")]
    demo: bool,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user and print its API token.
    CreateUser {
        name: String,
        /// Use this token instead of a random one.
        #[arg(long)]
        token: Option<String>,
        /// Make the user a platform administrator.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        email: Option<String>,
    },
    /// Make a project public reference data: every user may read and copy its files,
    /// and none of them can be exported.
    PublishProject { project: String },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EGRESS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn valid_username(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

async fn admin(store: StoreArgs, command: AdminCommand) -> Result<()> {
    let db = server::open_store(&store.data_dir, store.database_url.as_deref()).await?;
    match command {
        AdminCommand::CreateUser {
            name,
            token,
            admin,
            email,
        } => {
            if !valid_username(&name) {
                bail!("a username is 2 to 64 letters, digits, '_' or '-'");
            }
            let token = token.unwrap_or_else(new_token);
            if token.len() < 16 {
                bail!("a token must be at least 16 characters");
            }
            let email = email.unwrap_or_else(|| format!("{name}@localhost"));
            let user = User {
                username: name.clone(),
                email,
                is_admin: admin,
                created_at: now_ms(),
            };
            match db.create_user(&user, &token_hash(&token)).await {
                Ok(()) => println!("{token}"),
                Err(StoreError::Conflict) => bail!("user {name} already exists"),
                Err(e) => return Err(e.into()),
            }
        }
        AdminCommand::PublishProject { project } => {
            let mut p = db
                .get_project(&project)
                .await?
                .with_context(|| format!("no project {project}"))?;
            p.is_public = true;
            p.modified_at = now_ms();
            db.update_project(&p).await?;
            println!("{project} is now public");
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<()> {
    init_logging(args.log_json);
    let data_dir = args.store.data_dir.clone();
    let mut config = Config::new(&args.listen, args.store.data_dir);
    config.database_url = args.store.database_url;
    config.platform_storage = args.platform_storage;
    config.public_url = args.public_url;
    config.secret_key_file = args.secret_key_file;
    config.rate_limit = args.rate_limit;
    config.rate_window = Duration::from_secs(args.rate_limit_window);
    config.body_limit = args.body_limit;
    config.header_read_timeout = Duration::from_secs(args.header_read_timeout_secs.max(1));
    config.max_connections = args.max_connections.max(1);
    config.upload_ttl = Duration::from_secs(args.upload_ttl);
    config.url_ttl = Duration::from_secs(args.url_ttl);
    config.sweep_interval = Duration::from_secs(args.sweep_interval.max(1));
    config.demo = args.demo;
    config.engine = egress::engine::EngineConfig {
        workers: args.workers.max(1),
        lease: Duration::from_secs(args.lease_secs.max(1)),
        multipart_cutoff: args.multipart_copy_cutoff,
        part_size: args.part_size.max(5 * 1024 * 1024),
        max_attempts: args.max_attempts.max(1),
        retry_base: Duration::from_millis(args.retry_base_ms.max(1)),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        stall_timeout: Duration::from_secs(args.stall_timeout_secs.max(1)),
        max_workers_per_volume: args.max_workers_per_volume,
        ..Default::default()
    };
    config.volume_policy = egress::volume::VolumePolicy {
        allow_endpoints: args
            .allow_endpoints
            .into_iter()
            .filter(|e| !e.is_empty())
            .collect(),
        local_roots: args.local_volume_roots,
        // Filled in by the server once its folders exist.
        reserved: Vec::new(),
    };
    let running = server::start(config).await?;
    tracing::info!(addr = %running.addr, engine = running.state.store.engine(), "egress is serving");
    if args.demo {
        println!(
            "{}",
            egress::demo::welcome(&running.state, &data_dir).await?
        );
    }
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    };
    stop.await?;
    tracing::info!("shutting down");
    running.stop().await
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Admin { store, command } => admin(store, command).await,
    }
}
