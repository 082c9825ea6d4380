//! `edge-agent`: the device agent for Linux devices (battery from sysfs).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use edge_agent::agent::{Agent, Identity};
use edge_agent::config::{BrokerArgs, FileConfig};
use edge_agent::hal::Platform;
use edge_agent::session::{
    run_device, spool_all, Exit, Host, HostEvent, SessionConfig, SessionStats,
};
use edge_agent::spool::{Spool, SpoolConfig, Sync};
use edge_agent::store::FileStore;
use edge_agent::sysfs::LinuxPlatform;
use edge_agent::Settings;
use logging::LogFormat;
use protocol::clock::{Clock, SystemClock};
use protocol::command::Offer;
use protocol::ids::{BatchId, CommandId, FirmwareVersion, HardwareRevision, ModelId, TenantId};
use protocol::state::{Birth, DeviceClass};
use protocol::{DeviceId, Limits, Timestamp};

/// Device agent: samples battery, temperature and restarts, publishes health over MQTT,
/// keeps what it cannot send in an on-disk spool, and acts on cloud commands.
///
/// Settings come from the TOML file, then FLEET_* environment variables, then flags.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, env = "FLEET_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// The device's id (letters, digits, `.`, `_`, `-`).
    #[arg(long, env = "FLEET_DEVICE_ID")]
    device_id: Option<String>,
    /// The tenant the device belongs to.
    #[arg(long, env = "FLEET_TENANT")]
    tenant: Option<String>,
    #[command(flatten)]
    broker: BrokerArgs,
    /// Directory for the state file and the spool.
    #[arg(long, env = "FLEET_AGENT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Seconds between samples (overrides the file; a cloud config command overrides both).
    #[arg(long)]
    sample_interval_s: Option<u32>,
    /// Seconds between heartbeats.
    #[arg(long)]
    heartbeat_interval_s: Option<u32>,
    /// Log format: human or json.
    #[arg(long, env = logging::FORMAT_ENV, default_value = "human")]
    log_format: LogFormat,
}

/// The Linux device as the agent's host: no fault injection; offers go to stdout.
struct LinuxHost {
    platform: LinuxPlatform,
    store: FileStore,
}

impl Host for LinuxHost {
    fn platform(&mut self) -> &mut dyn Platform {
        &mut self.platform
    }

    fn advance(&mut self, _now: Timestamp) -> Vec<HostEvent> {
        Vec::new()
    }

    fn offer(&mut self, command_id: &CommandId, offer: &Offer) {
        // The host firmware's UI shows offers; this binary prints them as JSON lines.
        let line = serde_json::json!({"command_id": command_id, "offer": offer});
        println!("{line}");
    }

    fn withdraw(&mut self, command_id: &CommandId) {
        let line = serde_json::json!({"command_id": command_id, "withdrawn": true});
        println!("{line}");
    }

    fn persist(&mut self, agent: &mut Agent) {
        if agent.take_dirty() {
            if let Err(e) = self.store.save(agent.state()) {
                tracing::error!(error = %e, "state not saved");
            }
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format).context("setting up logging")?;
    let file = match &cli.config {
        Some(path) => FileConfig::parse(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("in {}", path.display()))?,
        None => FileConfig::default(),
    };
    let Some(device) = cli.device_id.clone().or(file.device_id.clone()) else {
        bail!(
            "no device id: pass --device-id, set FLEET_DEVICE_ID or device_id in the config file"
        );
    };
    let device = DeviceId::new(&device).with_context(|| format!("device id {device:?}"))?;
    let tenant = cli
        .tenant
        .clone()
        .or(file.tenant.clone())
        .unwrap_or_else(|| "default".into());
    let tenant = TenantId::new(&tenant).with_context(|| format!("tenant {tenant:?}"))?;
    let session = cli.broker.or_file(&file).session(tenant)?;
    let mut settings = file.settings.clone().unwrap_or_default();
    if let Some(v) = cli.sample_interval_s {
        settings.sample_interval_s = v;
    }
    if let Some(v) = cli.heartbeat_interval_s {
        settings.heartbeat_interval_s = v;
    }
    settings.validate().context("settings")?;
    let state_dir = cli
        .state_dir
        .clone()
        .or(file.state_dir.clone())
        .unwrap_or_else(|| "agent-state".into());
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let id = &file.identity;
    let class: DeviceClass =
        serde_json::from_value(serde_json::Value::String(id.device_class.clone()))
            .with_context(|| format!("identity.device_class {:?}", id.device_class))?;
    let identity = Identity {
        device_id: device,
        birth: Birth {
            model: ModelId::new(&id.model).context("identity.model")?,
            device_class: class,
            hw_revision: HardwareRevision::new(&id.hw_revision).context("identity.hw_revision")?,
            batch: BatchId::new(&id.batch).context("identity.batch")?,
            firmware: FirmwareVersion::new(&id.firmware).context("identity.firmware")?,
            agent_version: FirmwareVersion::new(env!("CARGO_PKG_VERSION")).expect("valid"),
        },
    };
    let spool_config = SpoolConfig {
        sync: if file.spool.fsync {
            Sync::Always
        } else {
            Sync::Never
        },
        ..SpoolConfig::with_budget(file.spool.budget_bytes)
    };
    let root = file.sysfs_root.clone().unwrap_or_else(|| "/".into());
    let host = LinuxHost {
        platform: LinuxPlatform::new(root, &state_dir),
        store: FileStore::new(state_dir.join("agent-state.json")),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(
        identity,
        settings,
        host,
        &state_dir,
        spool_config,
        session,
    ))
}

async fn run(
    identity: Identity,
    settings: Settings,
    mut host: LinuxHost,
    state_dir: &std::path::Path,
    spool_config: SpoolConfig,
    session: SessionConfig,
) -> Result<()> {
    let spool_dir = state_dir.join("spool");
    let mut spool = Spool::open(&spool_dir, spool_config).context("opening the spool")?;
    if spool.recovered_torn() {
        tracing::warn!("the spool had a torn last record (a crash mid-write); it was cut off");
    }
    let saved = host.store.load()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (mut agent, boot) = Agent::boot(identity, saved, settings, &mut host.platform, clock.now());
    let mut stats = SessionStats::default();
    spool_all(
        &mut agent,
        &mut spool,
        &boot,
        &Limits::default(),
        &mut stats,
    )?;
    host.persist(&mut agent);
    tracing::info!(device = %agent.device_id(), boot = %agent.boot_id(), pending = spool.len(),
        broker = %session.endpoint.address(), "agent started");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = stop_tx.send(true);
    });
    let exit = run_device(
        &mut agent, &mut host, &mut spool, &session, clock, stop_rx, &mut stats,
    )
    .await?;
    debug_assert_eq!(exit, Exit::Stopped);
    tracing::info!(
        acked = stats.acked,
        dropped = stats.dropped,
        pending = spool.len(),
        "agent stopped"
    );
    Ok(())
}
