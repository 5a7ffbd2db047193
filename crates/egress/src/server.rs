//! Putting the parts together: configuration, start-up and graceful shutdown of `egress serve`.

use crate::secret_key;
use anyhow::{Context, Result};
use egress_api::signing::UrlSigner;
use egress_api::{ApiSettings, AppState, RateLimiter};
use egress_engine::background::Background;
use egress_engine::services::Services;
use egress_engine::sweeper;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use crate::config::{Config, StoreConfig};

/// Opens the store a command names, creating the data dir first.
pub async fn open_store(store: &StoreConfig) -> Result<egress_store::DynStore> {
    std::fs::create_dir_all(&store.data_dir)
        .with_context(|| format!("creating {}", store.data_dir.display()))?;
    egress_store::open(&store.url())
        .await
        .context("opening the database")
}

/// A started server: its address and shared state, and the task serving it.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub task: tokio::task::JoinHandle<Result<()>>,
    shutdown: Arc<Notify>,
    /// Runs the engine and the sweeper; dropped after the server task has ended.
    _background: Background,
}

impl Running {
    /// Stops accepting connections and lets in-flight requests finish.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.notify_one();
        self.task.await?
    }
}

/// Binds, builds every part and starts serving in the background.
/// `config` is normalized first, so one built in code gets the same bounds as the CLI's.
pub async fn start(mut config: Config) -> Result<Running> {
    config.normalize();
    egress_api::metrics::handle();
    let store = open_store(&config.store).await?;
    let key_env = std::env::var("EGRESS_SECRET_KEY").ok();
    let key = secret_key::load(
        &config.store.data_dir,
        config.secret_key_file.as_deref(),
        key_env.as_deref(),
    )?;
    let platform_spec = config
        .platform_storage
        .clone()
        .unwrap_or_else(|| config.store.data_dir.join("platform").display().to_string());
    let platform = egress_storage::open_platform(&platform_spec)
        .await
        .context("opening platform storage")?;
    let volume_policy = local_volume_policy(&config, &platform_spec)?;
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let services = Arc::new(Services {
        store,
        platform,
        sweep: Arc::new(Notify::new()),
        jobs: Arc::new(Notify::new()),
        file_jobs: Arc::new(Notify::new()),
        job_ends: Default::default(),
        secrets: egress_core::secret_box::SecretBox::new(&key.0),
        volume_policy,
        volume_clients: egress_storage::volume::VolumeClients::new(
            egress_storage::volume::CloudSettings {
                aws_identity: egress_storage::volume::AwsIdentity::from_env(),
                sts_endpoint: config.volume_policy.sts_endpoint.clone(),
                azure_authority_host: config.volume_policy.azure_authority_host.clone(),
                azure_shared_keys: config
                    .volume_policy
                    .azure_shared_keys
                    .iter()
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(account, key)| (account.to_string(), key.to_string()))
                    .collect(),
            },
        ),
    });
    let state = Arc::new(AppState {
        services: services.clone(),
        signer: UrlSigner::new(&key.0),
        limiter: RateLimiter::new(config.rate_limit, config.rate_window.as_secs()),
        tokens: Default::default(),
        settings: ApiSettings {
            public_url,
            body_limit: config.body_limit,
            request_timeout: config.request_timeout,
            url_ttl: config.url_ttl,
            upload_ttl: config.upload_ttl,
        },
    });
    if config.demo {
        crate::demo::setup(&services, &config.store.data_dir).await?;
    }
    let background = Background::start().context("starting the background runtime")?;
    let sweeper = background.spawn(sweeper::run(services.clone(), config.sweep_interval));
    let checkpointer = tokio::spawn(checkpoint_regularly(state.store.clone()));
    let (stop_engine, engine_stopped) = tokio::sync::watch::channel(false);
    let engine = {
        let (services, engine_config) = (services.clone(), config.engine.clone());
        // Built on the background runtime, so that the tasks it spawns run there too.
        background.spawn(async move {
            if engine_config.run_jobs {
                egress_engine::Engine::new(services, engine_config)
                    .run(engine_stopped)
                    .await
            }
        })
    };
    let app = egress_api::router(state.clone());
    let limits = egress_api::http_server::Limits {
        header_read_timeout: config.header_read_timeout,
        max_connections: config.max_connections,
    };
    let shutdown = Arc::new(Notify::new());
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        egress_api::http_server::serve(listener, app, limits, async move {
            stop.notified().await;
            // Stop claiming at once; running copies get the grace period to finish.
            let _ = stop_engine.send(true);
        })
        .await;
        let _ = engine.await;
        sweeper.abort();
        checkpointer.abort();
        Ok(())
    });
    Ok(Running {
        addr,
        state,
        task,
        shutdown,
        _background: background,
    })
}

/// The volume policy with its folders resolved: the declared local-volume roots (plus the demo's
/// folder under `--demo`) and the server's own folders, which no local volume may overlap.
fn local_volume_policy(
    config: &Config,
    platform_spec: &str,
) -> Result<egress_core::volume::VolumePolicy> {
    let resolve = |path: &std::path::Path| {
        std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))
    };
    let mut policy = egress_core::volume::VolumePolicy {
        allow_endpoints: config.volume_policy.allow_endpoints.clone(),
        s3_default_endpoint: config.volume_policy.s3_default_endpoint.clone(),
        gcs_default_endpoint: config.volume_policy.gcs_default_endpoint.clone(),
        ..Default::default()
    };
    let mut declared = config.volume_policy.local_roots.clone();
    if config.demo {
        let folder = crate::demo::volume_folder(&resolve(&config.store.data_dir)?);
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        declared.push(folder);
    }
    policy.reserved = vec![resolve(&config.store.data_dir)?];
    if !platform_spec.starts_with("s3://") {
        let platform = platform_spec
            .strip_prefix("file://")
            .unwrap_or(platform_spec);
        policy
            .reserved
            .push(resolve(std::path::Path::new(platform))?);
    }
    if let Some(key_file) = &config.secret_key_file {
        policy.reserved.push(resolve(key_file)?);
    }
    for root in declared {
        let root = resolve(&root)?;
        if policy
            .reserved
            .iter()
            .any(|own| root.starts_with(own) || own.starts_with(&root))
        {
            anyhow::bail!(
                "--local-volume-root {} overlaps the server's own files (data dir, platform storage or key)",
                root.display()
            );
        }
        policy.local_roots.push(root);
    }
    Ok(policy)
}

/// Checkpoints the store every second, so that commits on the request path rarely have to.
async fn checkpoint_regularly(store: egress_store::DynStore) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %format!("{e:#}"), "checkpoint failed; will retry");
        }
    }
}
