//! `firmware-sim`: simulated fleets running the real edge-agent code.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use firmware_sim::dataset;
use firmware_sim::fleet::{Fleet, DEFAULT_START};
use firmware_sim::live::{self, LiveConfig};
use firmware_sim::offline::SimSettings;
use logging::LogFormat;
use protocol::ids::TenantId;
use protocol::Timestamp;

/// Simulated device fleets with known failure times, running the real edge-agent code.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format: human or json.
    #[arg(long, global = true, env = logging::FORMAT_ENV, default_value = "human")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a training data set (telemetry + ground_truth.csv) without a broker.
    Generate {
        #[command(flatten)]
        fleet: FleetArgs,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Publish a fleet live over MQTT in accelerated time.
    Run {
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        broker: edge_agent::config::BrokerArgs,
        /// Simulated seconds per wall-clock second.
        #[arg(long, default_value_t = 86_400.0)]
        speedup: f64,
        /// Write ground_truth.csv for the fleet here.
        #[arg(long)]
        truth: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct FleetArgs {
    /// Devices in the fleet.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Days to simulate.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Seed: the same seed gives the same fleet and the same telemetry.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tenant in the topics.
    #[arg(long, default_value = "acme")]
    tenant: String,
    /// Simulated start, ms since the epoch (default 2026-01-01T00:00:00Z).
    #[arg(long, default_value_t = DEFAULT_START.0)]
    start_ms: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 600)]
    sample_interval_s: u32,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 3600)]
    heartbeat_interval_s: u32,
}

impl FleetArgs {
    fn build(&self) -> Result<(Fleet, SimSettings, TenantId)> {
        anyhow::ensure!(self.devices > 0, "--devices must be at least 1");
        anyhow::ensure!(self.days > 0, "--days must be at least 1");
        let tenant =
            TenantId::new(&self.tenant).with_context(|| format!("--tenant {:?}", self.tenant))?;
        let mut settings = SimSettings::default();
        settings.agent.sample_interval_s = self.sample_interval_s;
        settings.agent.heartbeat_interval_s = self.heartbeat_interval_s;
        settings.agent.battery_drop_window_s = settings
            .agent
            .battery_drop_window_s
            .max(self.sample_interval_s * 3);
        settings.agent.validate().context("sampling settings")?;
        let fleet = Fleet::generate(self.seed, self.devices, self.days, Timestamp(self.start_ms));
        Ok((fleet, settings, tenant))
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format).context("setting up logging")?;
    match cli.command {
        Cmd::Generate {
            fleet,
            out,
            threads,
        } => {
            let (f, settings, tenant) = fleet.build()?;
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            eprintln!(
                "simulating {} devices for {} days on {threads} thread(s) into {}",
                f.devices.len(),
                f.days,
                out.display()
            );
            let progress = |done: usize, total: usize| eprintln!("  {done}/{total} devices");
            let s = dataset::generate(&f, fleet.seed, &settings, &tenant, &out, threads, &progress)
                .with_context(|| format!("writing {}", out.display()))?;
            let secs = s.elapsed.as_secs_f64();
            eprintln!(
                "done: {:.0} device-days, {} messages, {} dropped by full spools, {} devices failed, \
                 {:.1} s ({:.0} device-days/s)",
                s.device_days,
                s.messages,
                s.dropped,
                s.failed,
                secs,
                s.device_days / secs.max(1e-9)
            );
        }
        Cmd::Run {
            fleet,
            broker,
            speedup,
            truth,
        } => {
            let (f, settings, tenant) = fleet.build()?;
            let session = broker.session(tenant)?;
            if let Some(path) = truth {
                dataset::write_fleet_truth(&f, &path)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let config = LiveConfig {
                session,
                settings,
                speedup,
            };
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt
                .block_on(async { live::run(Arc::new(f), config, live::stop_on_ctrl_c()).await })?;
            eprintln!(
                "done: {} devices, {} messages acknowledged by the broker, {} dropped by full spools",
                report.devices, report.acked, report.dropped
            );
            if report.skipped_samples > 0 {
                tracing::warn!(
                    skipped = report.skipped_samples,
                    "devices fell behind the simulated clock and skipped sample periods; \
                     lower --speedup for a faithful run"
                );
            }
        }
    }
    Ok(())
}
