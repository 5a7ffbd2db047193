//! The `egress` binary: `serve` runs the server; `admin` manages users and public projects
//! on the same store, even while a server runs; `export` and `import` are clients of any
//! SBG-compatible API.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use egress::server::{self, Config, StoreConfig};
use egress_core::util::{new_token, now_ms, token_hash};
use egress_store::{StoreError, User};

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
    Serve(Box<Config>),
    /// Manage users and projects directly in the store.
    Admin {
        #[command(flatten)]
        store: StoreConfig,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Export a project's files (or a manifest's) to a volume, through the public API of Egress
    /// or CAVATICA. Rerun the same command to resume.
    Export(Box<egress_cli::ExportArgs>),
    /// Import the objects under a prefix of a volume into a project, through the public API.
    /// Rerun the same command to resume.
    Import(Box<egress_cli::ImportArgs>),
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

async fn admin(store: StoreConfig, command: AdminCommand) -> Result<()> {
    let db = server::open_store(&store).await?;
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

async fn serve(config: Config) -> Result<()> {
    init_logging(config.log_json);
    let (data_dir, demo) = (config.store.data_dir.clone(), config.demo);
    let running = server::start(config).await?;
    tracing::info!(addr = %running.addr, engine = running.state.store.engine(), "egress is serving");
    if demo {
        println!(
            "{}",
            egress::demo::welcome(&running.state.services, running.state.base(), &data_dir).await?
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

fn main() -> Result<()> {
    let runtime = |threaded: bool| {
        let mut b = if threaded {
            tokio::runtime::Builder::new_multi_thread()
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        b.enable_all().build()
    };
    match Cli::parse().command {
        Command::Serve(config) => runtime(true)?.block_on(serve(*config)),
        Command::Admin { store, command } => runtime(true)?.block_on(admin(store, command)),
        // A client waits on the network: one thread does, and keeps its memory small.
        Command::Export(args) => {
            std::process::exit(runtime(false)?.block_on(egress_cli::export(*args)))
        }
        Command::Import(args) => {
            std::process::exit(runtime(false)?.block_on(egress_cli::import(*args)))
        }
    }
}
