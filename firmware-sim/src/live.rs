//! The `run` mode: every device of a fleet as its own task running the real agent
//! loop ([`edge_agent::session::run_device`]) against a broker, in accelerated time.

use std::collections::BTreeMap;
use std::sync::Arc;

use edge_agent::session::{run_device, spool_all, Exit, SessionConfig, SessionStats};
use edge_agent::spool::{Spool, SpoolConfig, Sync};
use edge_agent::Agent;
use protocol::clock::Clock;
use protocol::{DeviceId, Limits};
use tokio::sync::watch;

use crate::clock::ScaledClock;
use crate::device::SimDevice;
use crate::fleet::Fleet;
use crate::offline::SimSettings;

/// How to run a fleet live.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The broker and session settings (the client id is each device's id).
    pub session: SessionConfig,
    /// Agent settings and spool budget.
    pub settings: SimSettings,
    /// Simulated seconds per wall-clock second.
    pub speedup: f64,
}

/// What a live run did.
#[derive(Debug, Clone, Default)]
pub struct LiveReport {
    /// Devices run.
    pub devices: usize,
    /// Messages the broker acknowledged.
    pub acked: u64,
    /// Messages dropped by full spools.
    pub dropped: u64,
    /// Sample periods skipped because devices fell behind the clock (speed-up too high
    /// for the CPU); zero in a faithful run.
    pub skipped_samples: u64,
    /// Per device, every seq it spooled (and so should reach the broker).
    pub spooled: BTreeMap<DeviceId, Vec<u64>>,
    /// Per device, every seq the broker acknowledged (so a subscriber must see it).
    pub delivered: BTreeMap<DeviceId, Vec<u64>>,
    /// Per device, successful connections.
    pub connects: BTreeMap<DeviceId, u64>,
}

/// Runs `fleet` until its window ends (in simulated time) or `stop` turns true.
pub async fn run(
    fleet: Arc<Fleet>,
    config: LiveConfig,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<LiveReport> {
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(fleet.start, config.speedup));
    run_on(fleet, config, clock, stop).await
}

/// [`run`] on a clock the caller also reads (a cloud side that must share simulated
/// time with the devices); `config.speedup` is then the clock's business.
pub async fn run_on(
    fleet: Arc<Fleet>,
    config: LiveConfig,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<LiveReport> {
    let (end_tx, end_rx) = watch::channel(false);
    // The window's end, or the caller's stop, stops every device.
    let window = clock.wall_delay(fleet.end().0 - fleet.start.0);
    let mut outer = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(window) => {}
            _ = async { while outer.changed().await.is_ok() { if *outer.borrow() { break } } } => {}
        }
        let _ = end_tx.send(true);
    });
    // Progress: where simulated time is, every two seconds of wall time.
    let progress_clock = clock.clone();
    let (start, days) = (fleet.start, fleet.days);
    let mut progress_stop = end_rx.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = progress_stop.wait_for(|s| *s) => return,
            }
            let day = (progress_clock.now().0 - start.0) as f64 / crate::fleet::DAY_MS as f64;
            tracing::info!("simulated day {:.1} of {days}", day.min(f64::from(days)));
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    for spec in fleet.devices.iter().cloned() {
        let clock = clock.clone();
        let config = config.clone();
        let stop = end_rx.clone();
        let start = fleet.start;
        tasks.spawn(async move {
            let id = spec.id.clone();
            let mut dev = SimDevice::new(spec, start);
            let mut spool = Spool::in_memory(SpoolConfig {
                budget_bytes: config.settings.spool_budget,
                segment_bytes: config.settings.spool_budget,
                sync: Sync::Never,
            });
            let mut stats = SessionStats {
                spooled: Some(Vec::new()),
                delivered: Some(Vec::new()),
                ..SessionStats::default()
            };
            let limits = Limits::default();
            loop {
                let now = clock.now();
                let (mut agent, boot) = Agent::boot(
                    dev.identity(),
                    dev.saved.clone(),
                    config.settings.agent.clone(),
                    dev.hardware(),
                    now,
                );
                spool_all(&mut agent, &mut spool, &boot, &limits, &mut stats)?;
                let exit = run_device(
                    &mut agent,
                    &mut dev,
                    &mut spool,
                    &config.session,
                    clock.clone(),
                    stop.clone(),
                    &mut stats,
                )
                .await?;
                match exit {
                    Exit::Stopped => break,
                    Exit::Reset(_) if dev.dead => break,
                    Exit::Reset(ev) => {
                        let down = dev.downtime_ms(&ev);
                        let mut stop = stop.clone();
                        tokio::select! {
                            _ = tokio::time::sleep(clock.wall_delay(down)) => {}
                            _ = stop.wait_for(|s| *s) => {}
                        }
                        // Off when the run ends: it boots once more and, seeing the
                        // stop, delivers what its spool holds before saying goodbye.
                    }
                }
            }
            anyhow::Ok((id, stats))
        });
    }
    let mut report = LiveReport {
        devices: fleet.devices.len(),
        ..Default::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let (id, stats) = joined??;
        report.acked += stats.acked;
        report.dropped += stats.dropped;
        report.skipped_samples += stats.skipped_samples;
        report.connects.insert(id.clone(), stats.connects);
        report.delivered.insert(
            id.clone(),
            stats.delivered.into_iter().flatten().map(|s| s.0).collect(),
        );
        report.spooled.insert(
            id,
            stats.spooled.into_iter().flatten().map(|s| s.0).collect(),
        );
    }
    Ok(report)
}

/// A stop signal that turns true on Ctrl-C.
pub fn stop_on_ctrl_c() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
        }
    });
    rx
}
