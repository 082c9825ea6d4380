//! The one-command demo: an in-process broker (rumqttd), SQLite in a local data
//! directory, the bundled model, and a firmware-sim fleet running the real agent code
//! in accelerated time. Tickets print as they open; the desk is served while it runs,
//! with a simulated service team ([`team`], [`staff`]) working the tickets and customers
//! answering on the progress page; the run ends with a summary scored against the
//! simulation's ground truth, and the desk stays up on the run's final state.

pub mod analysts;
pub mod recyclers;
pub mod staff;
pub mod team;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use edge_agent::session::SessionConfig;
use firmware_sim::clock::ScaledClock;
use firmware_sim::fleet::{Fleet, DAY_MS, DEFAULT_START};
use firmware_sim::live::{self, LiveConfig};
use firmware_sim::offline::SimSettings;
use protocol::clock::Clock;
use protocol::TenantId;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::desk::api::DeskState;
use crate::desk::auth::Role;
use crate::desk::casework;
use crate::ingest::OpenedTicket;
use crate::service::{self, Observers};
use crate::store::tickets::{LogEntry, QueueItem};
use crate::store::{Registration, SqliteSync, Store, TicketRow};
use crate::tickets::progress::Rating;
use crate::tickets::sla::SlaState;
use protocol::clock::ManualClock;
use staff::Staff;
use team::{Fate, TeamConfig};

/// How to size and place a demo run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Devices in the fleet.
    pub devices: usize,
    /// Simulated days.
    pub days: u32,
    /// Fleet seed.
    pub seed: u64,
    /// Simulated seconds per wall second.
    pub speedup: f64,
    /// Where the SQLite database goes (emptied at start).
    pub data_dir: PathBuf,
    /// Where the desk, `/healthz` and `/metrics` listen, if anywhere; the simulated
    /// service team works through it, so without it nobody works the tickets.
    pub http: Option<std::net::SocketAddr>,
    /// Print each ticket as it opens.
    pub print_tickets: bool,
    /// How the simulated team and customers behave.
    pub team: TeamConfig,
}

/// The demo's result, scored against ground truth.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Devices simulated.
    pub devices: usize,
    /// Days simulated.
    pub days: u32,
    /// Devices that failed within the run.
    pub failed_devices: usize,
    /// Failing devices that got a service ticket (not just a tip, nor a campaign's)
    /// before they failed.
    pub reached_before_failure: usize,
    /// Failing devices whose first ticket came after the failure, or never.
    pub missed: usize,
    /// Devices with a service ticket that did not fail within the run.
    pub false_alarms: usize,
    /// Tickets opened, tips included.
    pub tickets: usize,
    /// Median days from a reached device's first ticket to its failure.
    pub median_lead_days: Option<f64>,
    /// Lower and upper quartile of the lead, days.
    pub lead_days_q1_q3: Option<(f64, f64)>,
    /// Tickets by offer kind.
    pub offers_by_kind: BTreeMap<String, usize>,
    /// Tickets by tier.
    pub tickets_by_tier: BTreeMap<String, usize>,
    /// Tickets by final state.
    pub tickets_by_state: BTreeMap<String, usize>,
    /// Failing devices reached, by failure mode: (reached, failed).
    pub reached_by_mode: BTreeMap<String, (usize, usize)>,
    /// Messages accepted into the store.
    pub messages_ingested: u64,
    /// Redeliveries dropped by deduplication.
    pub duplicates: u64,
    /// Messages dead-lettered.
    pub rejected: u64,
    /// Messages the broker acknowledged to the devices.
    pub messages_published: u64,
    /// Messages the broker acknowledged to a device that are not in the store: zero
    /// unless something lost them. (A device that fails takes what its spool still
    /// held with it; that is not counted here.)
    pub messages_lost: u64,
    /// Sample periods the simulator skipped (speed-up too high for the machine).
    pub skipped_samples: u64,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
    /// The model that scored.
    pub model_version: String,
    /// SLA kept per tier, over the tickets the team had to work: accepted by the
    /// customer (declined or cancelled offers, and tips, which the customer settles
    /// alone, left out).
    pub sla_met_by_tier: BTreeMap<String, SlaTally>,
    /// Resolved tickets by outcome.
    pub outcomes: BTreeMap<String, usize>,
    /// Offers answered, by where: `device` or `progress_page`.
    pub customer_answers: BTreeMap<String, usize>,
    /// The customers' ratings (1 to 5), when any were given.
    pub ratings: Option<RatingMeans>,
    /// What the simulated team and web customers did, when the desk was served.
    pub desk: Option<staff::StaffReport>,
    /// The desk's address, when it was served.
    pub desk_url: Option<String>,
    /// Trade-ins graded on the bench.
    pub tradeins_graded: u64,
    /// Trade-ins routed to refurbishment.
    pub refurbished: u64,
    /// Trade-ins routed to recycling.
    pub recycled: u64,
    /// Kilograms of e-waste diverted (both routes).
    pub ewaste_kg: f64,
    /// Mean settled price over quote (EUR), when any trade-in was settled.
    pub quote_vs_settled: Option<f64>,
    /// What the simulated recycling desk did, when the desk was served.
    pub recycling: Option<recyclers::RecyclingReport>,
    /// Cohorts the weekly watch flagged, in the order it flagged them.
    pub cohorts_flagged: Vec<analysts::FlaggedCohort>,
    /// The campaigns the simulated analysts approved, with their progress at the end.
    pub campaigns: Vec<analysts::CampaignSummary>,
    /// The last whole simulated month, whose after-sales review was written.
    pub report_period: Option<String>,
    /// That review as one HTML file (its JSON beside it).
    pub report_path: Option<PathBuf>,
}

/// How a tier's tickets fared against their SLA.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlaTally {
    /// Closed within the window.
    pub met: usize,
    /// Breached, closed or not.
    pub missed: usize,
    /// Still open within the window at the end.
    pub open: usize,
    /// `met` over `met + missed`, when either is not zero.
    pub share_met: Option<f64>,
}

/// The customers' mean ratings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatingMeans {
    /// Ratings given.
    pub count: usize,
    /// Mean of the result's stars.
    pub result: f64,
    /// Mean of the speed's stars.
    pub speed: f64,
    /// Mean of the service's stars.
    pub service: f64,
}

/// A finished run: its summary, and the desk to keep serving on its final state.
pub struct Finished {
    /// The summary.
    pub summary: Summary,
    /// The desk, when it was served.
    pub desk: Option<DeskAfter>,
}

/// What serving the desk after the run needs.
#[derive(Debug, Clone)]
pub struct DeskAfter {
    /// The store.
    pub store_url: String,
    /// Where it listened during the run.
    pub addr: std::net::SocketAddr,
    /// The simulated moment the run ended: the desk's clock stands still there.
    pub end: protocol::Timestamp,
}

/// Runs the demo.
pub async fn run(opts: &DemoOptions, stop: watch::Receiver<bool>) -> anyhow::Result<Finished> {
    let started = Instant::now();
    let broker = crate::broker::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .context("starting the in-process MQTT broker")?;
    eprintln!("in-process MQTT broker on {broker}");
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let db = opts.data_dir.join("fleet.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::remove_file(&p)
                .with_context(|| format!("removing the last run's {}", p.display()))?;
        }
    }
    let store_url = format!("sqlite://{}", db.display());
    let fleet = Arc::new(Fleet::generate(
        opts.seed,
        opts.devices,
        opts.days,
        DEFAULT_START,
    ));
    let tenant = TenantId::new("demo").expect("a valid tenant");
    register_fleet(&store_url, &fleet, tenant.as_str()).await?;
    let people = match opts.http {
        Some(_) => Some(desk_users(&store_url, &opts.team).await?),
        None => None,
    };
    eprintln!(
        "fleet: {} devices, {} days from 2026-01-01, seed {}; {} fail within the run (the ingest side does not know which)",
        fleet.devices.len(),
        fleet.days,
        opts.seed,
        failing(&fleet).count()
    );

    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(fleet.start, opts.speedup));
    let mut config = Config::default();
    config.mqtt.url = format!("mqtt://{broker}");
    config.mqtt.client_id = "cloud-ingest-demo".into();
    config.store.url = store_url.clone();
    config.store.sqlite_synchronous = SqliteSync::Normal;
    config.http.listen = opts.http;
    // A small random inspection sample, so the run's labels also cover devices the model
    // did not flag (docs/features.md, "Training from the field").
    config.policy.random_check_share = 0.001;
    let metrics = Arc::new(crate::ops::metrics::Metrics::new());
    let (ingest_stop_tx, ingest_stop) = watch::channel(false);
    let (ready_tx, mut ready) = watch::channel(false);
    let (ticket_tx, mut ticket_rx) = mpsc::unbounded_channel::<OpenedTicket>();
    let bound = Arc::new(std::sync::Mutex::new(None));
    let ingest = tokio::spawn(service::run(
        config,
        clock.clone(),
        ingest_stop,
        Observers {
            tickets: Some(ticket_tx),
            ready: Some(ready_tx),
            metrics: Some(metrics.clone()),
            http_bound: Some(bound.clone()),
        },
    ));
    tokio::time::timeout(Duration::from_secs(30), ready.wait_for(|r| *r))
        .await
        .context("ingest did not subscribe to the broker within 30 s")??;
    // The listener is bound (or has failed) before ingest reports ready.
    let desk_addr = *bound.lock().expect("bound lock");
    if let (Some(asked), None) = (opts.http, desk_addr) {
        anyhow::bail!(
            "the desk could not listen on {asked} (in use?); pass --http 127.0.0.1:0 for any free port"
        );
    }
    let (staff_stop_tx, staff_stop) = watch::channel(false);
    let recycler_fates: HashMap<String, (Fate, u64)> = failing(&fleet)
        .filter_map(|(d, at)| {
            Some((
                d.id.as_str().to_owned(),
                (Fate::of_mode(d.fate.as_ref()?.mode.as_str()), at),
            ))
        })
        .collect();
    let mut recycling = None;
    let staff = match (desk_addr, people) {
        (Some(addr), Some((admin, tokens, recycler))) => {
            let agent_token = tokens
                .get(&opts.team.agents[0])
                .cloned()
                .unwrap_or_default();
            recycling = Some(tokio::spawn(
                recyclers::Recyclers {
                    base: format!("http://{addr}"),
                    token: recycler,
                    agent_token,
                    fates: recycler_fates,
                    clock: clock.clone(),
                }
                .run(staff_stop.clone()),
            ));
            eprintln!(
                "the desk: http://{addr}/desk (sign in with the admin token {admin}); a simulated team of {} works the tickets",
                tokens.len()
            );
            let fates = failing(&fleet)
                .filter_map(|(d, _)| {
                    Some((
                        d.id.as_str().to_owned(),
                        Fate::of_mode(d.fate.as_ref()?.mode.as_str()),
                    ))
                })
                .collect();
            let staff = Staff {
                base: format!("http://{addr}"),
                tokens,
                config: opts.team.clone(),
                fates,
                clock: clock.clone(),
            };
            Some(tokio::spawn(staff.run(staff_stop.clone())))
        }
        _ => None,
    };

    let analysts = tokio::spawn(
        analysts::Analysts {
            store: Store::open(&store_url, 1, SqliteSync::Normal).await?,
            watcher: crate::cohorts::watcher::Watcher {
                config: crate::cohorts::watch::WatchConfig::default(),
            },
            fleet: fleet.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            policy: crate::policy::PolicyConfig::default(),
        }
        .run(staff_stop.clone()),
    );
    let print = opts.print_tickets;
    let start = fleet.start;
    let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = opened.clone();
    let printer = tokio::spawn(async move {
        let mut n = 0usize;
        while let Some(t) = ticket_rx.recv().await {
            n += 1;
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if print {
                println!("{}", describe(&t, start));
            }
        }
        n
    });

    let mut session = SessionConfig::from_url(&format!("mqtt://{broker}"), tenant.clone())
        .map_err(anyhow::Error::msg)?;
    session.keep_alive = Duration::from_secs(60);
    let live_config = LiveConfig {
        session,
        settings: SimSettings::default(),
        speedup: opts.speedup,
    };
    eprintln!(
        "simulating {} days at {}× speed (about {:.0} s); tickets print as they open",
        opts.days,
        opts.speedup,
        f64::from(opts.days) * 86_400.0 / opts.speedup
    );
    let progress = {
        let (clock, metrics, days) = (clock.clone(), metrics.clone(), fleet.days);
        let tickets = opened.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            every.tick().await;
            loop {
                every.tick().await;
                let day = (clock.now().0 - start.0) as f64 / DAY_MS as f64;
                eprintln!(
                    "… day {:.0} of {days}: {} messages scored, {} tickets",
                    day.min(f64::from(days)),
                    metrics.scores.get(),
                    tickets.load(std::sync::atomic::Ordering::Relaxed)
                );
            }
        })
    };
    let live = live::run_on(fleet.clone(), live_config, clock.clone(), stop).await;
    progress.abort();
    let live = live?;
    let end = clock.now();

    // Let ingest take in everything the devices sent, then stop it. It may trail the
    // fleet when the machine is busy: wait while it makes progress.
    let reader = Store::open(&store_url, 1, SqliteSync::Normal).await?;
    let sent: u64 = live.delivered.values().map(|s| s.len() as u64).sum();
    let mut last = 0;
    let mut still = Instant::now();
    loop {
        let now = reader.message_count().await?;
        if now >= sent && missing(&reader, &live).await? == 0 {
            break;
        }
        if now != last {
            (last, still) = (now, Instant::now());
        } else if still.elapsed() > Duration::from_secs(15) {
            eprintln!("ingest made no progress for 15 s: stopping it");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = staff_stop_tx.send(true);
    let staff = match staff {
        Some(h) => Some(h.await.context("the simulated team panicked")?),
        None => None,
    };
    let recycling = match recycling {
        Some(h) => Some(h.await.context("the simulated recycling desk panicked")?),
        None => None,
    };
    let cohorts_flagged = analysts.await.context("the simulated analysts panicked")?;
    let _ = ingest_stop_tx.send(true);
    let report = ingest.await.context("the ingest task panicked")??;
    let _ = printer.await;
    let tickets = reader.tickets().await?;
    let messages = reader.message_count().await?;
    let lost = missing(&reader, &live).await?;
    reader.close().await;
    let mut summary = summarise(&fleet, &tickets);
    summary.messages_ingested = messages;
    summary.duplicates = report.duplicates;
    summary.rejected = report.rejected;
    summary.messages_published = live.acked;
    summary.messages_lost = lost;
    summary.skipped_samples = live.skipped_samples;
    summary.wall_seconds = started.elapsed().as_secs_f64();
    summary.model_version = models::artifact::ModelArtifact::bundled()
        .map(|m| m.version)
        .unwrap_or_default();
    let desk = DeskState::new(
        Store::open(&store_url, 1, SqliteSync::Normal).await?,
        Arc::new(ManualClock::at(end)),
    );
    let mut worked = Vec::new();
    for t in &tickets {
        let (item, log, sla) = casework::load(&desk, t.id)
            .await
            .map_err(|e| anyhow::anyhow!("reading ticket {}: {}", t.id, e.detail()))?;
        let rating = desk.store.ticket_rating(t.id).await?.map(|r| r.rating);
        worked.push(Worked {
            item,
            log,
            sla: sla.state,
            rating,
        });
    }
    let milestones = desk.store.tradein_milestones(0, i64::MAX as u64).await?;
    summary.campaigns =
        analysts::campaigns(&desk.store, &crate::policy::PolicyConfig::default()).await?;
    let link_base = desk_addr.map_or_else(String::new, |a| format!("http://{a}"));
    if let Some((period, path)) = write_review(
        &desk.store,
        &opts.data_dir,
        fleet.start.0,
        end.0,
        &link_base,
    )
    .await?
    {
        summary.report_period = Some(period);
        summary.report_path = Some(path);
    }
    desk.store.close().await;
    desk_figures(&mut summary, &worked);
    tradein_figures(&mut summary, &milestones);
    summary.recycling = recycling;
    summary.cohorts_flagged = cohorts_flagged;
    summary.desk = staff;
    summary.desk_url = desk_addr.map(|a| format!("http://{a}/desk"));
    Ok(Finished {
        summary,
        desk: desk_addr.map(|addr| DeskAfter {
            store_url,
            addr,
            end,
        }),
    })
}

/// Writes the after-sales review of the last whole month between `start_ms` and
/// `end_ms` (simulated time) to `dir` as `review-<period>.html` and `.json`; the period
/// and the HTML file's path, or `None` when the run covered no whole month.
async fn write_review(
    store: &Store,
    dir: &std::path::Path,
    start_ms: u64,
    end_ms: u64,
    link_base: &str,
) -> anyhow::Result<Option<(String, PathBuf)>> {
    use crate::tradein::routing::{period_of, period_range, Period};
    let this = period_of(end_ms, Period::Month);
    let last = crate::report::trend::previous(&this).map_err(|e| anyhow::anyhow!(e))?;
    let (from, _, _) = period_range(&last).map_err(|e| anyhow::anyhow!(e))?;
    if from < start_ms {
        return Ok(None);
    }
    let watch = crate::cohorts::watch::WatchConfig::default();
    let report = crate::report::make(store, &last, &watch, end_ms).await?;
    let html = dir.join(format!("review-{last}.html"));
    std::fs::write(
        &html,
        crate::report::Format::Html.render(&report, link_base),
    )
    .with_context(|| format!("writing {}", html.display()))?;
    let json = dir.join(format!("review-{last}.json"));
    std::fs::write(
        &json,
        crate::report::Format::Json.render(&report, link_base),
    )
    .with_context(|| format!("writing {}", json.display()))?;
    Ok(Some((last, html)))
}

/// The run's trade-in figures, from every trade-in's milestones.
pub fn tradein_figures(s: &mut Summary, rows: &[crate::tradein::totals::Milestones]) {
    let t = crate::tradein::totals::totals(rows, 0, u64::MAX);
    s.tradeins_graded = t.graded;
    s.refurbished = t.refurbished;
    s.recycled = t.recycled;
    s.ewaste_kg = t.ewaste_kg;
    s.quote_vs_settled = t
        .quote_vs_settled
        .iter()
        .find(|m| m.currency == "EUR")
        .map(|m| m.mean_ratio);
}

/// Creates the desk's users for a run: `admin`, whose token is printed for people, the
/// simulated team's agents and its recycler `rita`; the admin token, the agents'
/// tokens by name and the recycler's.
async fn desk_users(
    store_url: &str,
    team: &TeamConfig,
) -> anyhow::Result<(String, HashMap<String, String>, String)> {
    let store = Store::open(store_url, 1, SqliteSync::Normal).await?;
    let now = protocol::clock::SystemClock.now().0;
    let (_, admin) = store.add_user("admin", Role::Admin, "demo", now).await?;
    let mut tokens = HashMap::new();
    for name in &team.agents {
        let (_, token) = store.add_user(name, Role::Agent, "demo", now).await?;
        tokens.insert(name.clone(), token);
    }
    let (_, recycler) = store.add_user("rita", Role::Recycler, "demo", now).await?;
    store.close().await;
    Ok((admin, tokens, recycler))
}

/// A ticket at the end of a run, as the desk sees it.
#[derive(Debug, Clone)]
pub struct Worked {
    /// The ticket.
    pub item: QueueItem,
    /// Its log.
    pub log: Vec<LogEntry>,
    /// Its SLA state at the end.
    pub sla: SlaState,
    /// The customer's rating.
    pub rating: Option<Rating>,
}

/// Fills the summary's desk figures from the tickets at the end: SLA kept per tier over
/// the tickets the team had to work (the customer accepted; tips left out, the customer
/// settles them alone), outcomes, where offers were answered, and the ratings.
pub fn desk_figures(s: &mut Summary, tickets: &[Worked]) {
    for by in ["device", "progress_page"] {
        s.customer_answers.entry(by.into()).or_default();
    }
    for tier in crate::tickets::Tier::ALL {
        s.sla_met_by_tier.entry(tier.to_string()).or_default();
    }
    for t in tickets {
        for e in &t.log {
            if e.kind == "move" && (e.to == "accepted" || e.to == "declined") {
                let by = if e.actor == "customer" {
                    "progress_page"
                } else {
                    "device"
                };
                *s.customer_answers.entry(by.into()).or_default() += 1;
            }
        }
        if let Some(o) = &t.item.outcome {
            *s.outcomes.entry(o.clone()).or_default() += 1;
        }
        let accepted = t.log.iter().any(|e| e.kind == "move" && e.to == "accepted");
        if !accepted || t.item.offer_kind == protocol::command::OfferKind::SelfServiceTip {
            continue;
        }
        let tally = s
            .sla_met_by_tier
            .entry(t.item.tier.to_string())
            .or_default();
        match t.sla {
            SlaState::Met => tally.met += 1,
            SlaState::Breached => tally.missed += 1,
            SlaState::OnTime | SlaState::AtRisk | SlaState::Paused => tally.open += 1,
        }
    }
    for tally in s.sla_met_by_tier.values_mut() {
        let decided = tally.met + tally.missed;
        tally.share_met = (decided > 0).then(|| tally.met as f64 / decided as f64);
    }
    let rated: Vec<&Rating> = tickets.iter().filter_map(|t| t.rating.as_ref()).collect();
    if !rated.is_empty() {
        let mean = |f: fn(&Rating) -> u8| {
            rated.iter().map(|r| f64::from(f(r))).sum::<f64>() / rated.len() as f64
        };
        s.ratings = Some(RatingMeans {
            count: rated.len(),
            result: mean(|r| r.result.get()),
            speed: mean(|r| r.speed.get()),
            service: mean(|r| r.service.get()),
        });
    }
}

/// Serves the desk on the run's final state, its clock standing at the run's end, until
/// `stop` turns true.
pub async fn keep_serving(after: DeskAfter, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let store = Store::open(&after.store_url, 2, SqliteSync::Normal).await?;
    let (_up, mqtt) = watch::channel(false);
    let model = Arc::new(crate::score::ModelSlot::load(None)?);
    // The registry names the run's last champion and challenger.
    crate::registry::sync(&store, &model).await?;
    let health = crate::ops::http::Health {
        mqtt,
        store: store.clone(),
        model,
        gate: Arc::default(),
        metrics: Arc::new(crate::ops::metrics::Metrics::new()),
        clock: Arc::new(ManualClock::at(after.end)),
        links: crate::desk::api::LinkSettings::default(),
        tradein: Arc::new(crate::tradein::Rules::default()),
        watch: Arc::new(crate::cohorts::watcher::Watcher {
            config: crate::cohorts::watch::WatchConfig::default(),
        }),
        policy: Arc::default(),
    };
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let serving = tokio::spawn(crate::ops::http::serve(
        after.addr,
        health,
        stop.clone(),
        bound_tx,
    ));
    let addr = bound_rx
        .await
        .map_err(|_| anyhow::anyhow!("the desk could not listen on {} again", after.addr))?;
    eprintln!("the desk stays up on the run's final state at http://{addr}/desk; Ctrl-C ends it");
    let _ = stop.wait_for(|s| *s).await;
    serving.await??;
    store.close().await;
    Ok(())
}

/// Messages the broker acknowledged to the devices that the store does not hold.
async fn missing(store: &Store, live: &live::LiveReport) -> anyhow::Result<u64> {
    let stored: std::collections::HashSet<(String, u64)> =
        store.message_keys().await?.into_iter().collect();
    Ok(live
        .delivered
        .iter()
        .flat_map(|(d, seqs)| seqs.iter().map(move |s| (d.as_str().to_owned(), *s)))
        .filter(|k| !stored.contains(k))
        .count() as u64)
}

fn failing(fleet: &Fleet) -> impl Iterator<Item = (&firmware_sim::fleet::DeviceSpec, u64)> {
    let end = fleet.end().0;
    fleet.devices.iter().filter_map(move |d| {
        d.fate
            .as_ref()
            .map(|f| f.failed_at.0)
            .filter(|&at| at <= end)
            .map(|at| (d, at))
    })
}

async fn register_fleet(url: &str, fleet: &Fleet, tenant: &str) -> anyhow::Result<()> {
    let store = Store::open(url, 1, SqliteSync::Normal).await?;
    for d in &fleet.devices {
        let sku = d.sku();
        // Two-year warranty from purchase; one customer per device.
        let reg = Registration {
            customer_id: Some(format!("cust-{}", d.id)),
            purchased_ms: Some(d.purchased.0),
            warranty_until_ms: Some(d.purchased.0 + 730 * DAY_MS),
            price_minor: Some(sku.price_minor),
            currency: Some("EUR".into()),
        };
        store.register(d.id.as_str(), tenant, &reg).await?;
    }
    // The registry's SKU weights, for the e-waste diverted.
    let now = protocol::clock::SystemClock.now().0;
    for sku in &firmware_sim::fleet::SKUS {
        store
            .set_sku_weight(sku.model, i64::from(sku.weight_g), "demo", now)
            .await?;
    }
    store.close().await;
    Ok(())
}

/// Scores the tickets against the fleet's ground truth.
pub fn summarise(fleet: &Fleet, tickets: &[TicketRow]) -> Summary {
    let is_tip = |t: &&TicketRow| t.offer_kind == protocol::command::OfferKind::SelfServiceTip;
    // The model's alarms: a campaign's tickets are the cohort's, not the model's.
    let is_campaign = |t: &&TicketRow| t.model_version == crate::campaigns::CAMPAIGN_MODEL;
    let mut first_service: HashMap<&str, i64> = HashMap::new();
    for t in tickets.iter().filter(|t| !is_tip(t) && !is_campaign(t)) {
        let e = first_service
            .entry(t.device_id.as_str())
            .or_insert(t.opened_ms);
        *e = (*e).min(t.opened_ms);
    }
    let failed: HashMap<&str, (u64, &str)> = failing(fleet)
        .map(|(d, at)| {
            let mode = d.fate.as_ref().map(|f| f.mode.as_str()).unwrap_or("");
            (d.id.as_str(), (at, mode))
        })
        .collect();
    let mut leads = Vec::new();
    let mut by_mode: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (id, (at, mode)) in &failed {
        let e = by_mode.entry((*mode).to_owned()).or_default();
        e.1 += 1;
        if let Some(&opened) = first_service.get(id) {
            if (opened as u64) < *at {
                leads.push((*at - opened as u64) as f64 / DAY_MS as f64);
                e.0 += 1;
            }
        }
    }
    leads.sort_by(f64::total_cmp);
    let q = |p: f64| leads[((leads.len() - 1) as f64 * p).round() as usize];
    let count = |f: &dyn Fn(&TicketRow) -> String| {
        let mut m = BTreeMap::new();
        for t in tickets {
            *m.entry(f(t)).or_insert(0) += 1;
        }
        m
    };
    Summary {
        devices: fleet.devices.len(),
        days: fleet.days,
        failed_devices: failed.len(),
        reached_before_failure: leads.len(),
        missed: failed.len() - leads.len(),
        false_alarms: first_service
            .keys()
            .filter(|d| !failed.contains_key(*d))
            .count(),
        tickets: tickets.len(),
        median_lead_days: (!leads.is_empty()).then(|| q(0.5)),
        lead_days_q1_q3: (!leads.is_empty()).then(|| (q(0.25), q(0.75))),
        offers_by_kind: count(&|t| t.offer_kind.as_str().to_owned()),
        tickets_by_tier: count(&|t| t.tier.to_string()),
        tickets_by_state: count(&|t| t.state.to_string()),
        reached_by_mode: by_mode,
        messages_ingested: 0,
        duplicates: 0,
        rejected: 0,
        messages_published: 0,
        messages_lost: 0,
        skipped_samples: 0,
        wall_seconds: 0.0,
        model_version: String::new(),
        sla_met_by_tier: BTreeMap::new(),
        outcomes: BTreeMap::new(),
        customer_answers: BTreeMap::new(),
        ratings: None,
        desk: None,
        desk_url: None,
        tradeins_graded: 0,
        refurbished: 0,
        recycled: 0,
        ewaste_kg: 0.0,
        quote_vs_settled: None,
        recycling: None,
        cohorts_flagged: Vec::new(),
        campaigns: Vec::new(),
        report_period: None,
        report_path: None,
    }
}

/// One line per ticket for people.
pub fn describe(t: &OpenedTicket, start: protocol::Timestamp) -> String {
    let day = |ms: u64| (ms.saturating_sub(start.0)) as f64 / DAY_MS as f64;
    let quote = match (t.quote_minor, &t.currency) {
        (Some(q), Some(c)) => format!(" quote {}.{:02} {c}", q / 100, q % 100),
        _ => String::new(),
    };
    format!(
        "day {:>6.1}  {}  {:<10} risk {:.2}  {:<12} -> {}{quote}  [{} tier, due day {:.1}]  why: {}",
        day(t.opened_ms),
        t.ticket_ref,
        t.device_id,
        t.risk,
        t.problem.as_str(),
        t.offer.as_str(),
        t.tier,
        day(t.due_ms),
        t.why.join("; ")
    )
}

/// The summary for people.
pub fn print_summary(s: &Summary) {
    println!();
    println!(
        "== summary: {} devices, {} days, model {} ==",
        s.devices, s.days, s.model_version
    );
    println!(
        "messages ingested         {} ({} duplicates dropped, {} dead-lettered)",
        s.messages_ingested, s.duplicates, s.rejected
    );
    println!("messages lost             {}", s.messages_lost);
    println!("devices that failed       {}", s.failed_devices);
    println!(
        "  reached before failing  {} ({:.0} %)",
        s.reached_before_failure,
        100.0 * s.reached_before_failure as f64 / s.failed_devices.max(1) as f64
    );
    if let (Some(m), Some((q1, q3))) = (s.median_lead_days, s.lead_days_q1_q3) {
        println!("  lead time, days         median {m:.1} (quartiles {q1:.1} to {q3:.1})");
    }
    for (mode, (r, n)) in &s.reached_by_mode {
        println!("    {mode:<22}{r} of {n}");
    }
    println!("false alarms (no failure) {}", s.false_alarms);
    println!("tickets                   {}", s.tickets);
    for (k, n) in &s.offers_by_kind {
        println!("  {k:<24}{n}");
    }
    let tiers: Vec<String> = s
        .tickets_by_tier
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let states: Vec<String> = s
        .tickets_by_state
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!("  by tier                 {}", tiers.join(", "));
    println!("  by state                {}", states.join(", "));
    if s.recycling.is_some() || s.tradeins_graded > 0 {
        println!(
            "trade-ins graded          {} ({} refurbished, {} recycled, {:.2} kg e-waste diverted{})",
            s.tradeins_graded,
            s.refurbished,
            s.recycled,
            s.ewaste_kg,
            s.quote_vs_settled
                .map(|r| format!("; settled at {:.0} % of the quote on average", r * 100.0))
                .unwrap_or_default()
        );
    }
    for f in &s.cohorts_flagged {
        println!(
            "cohort flagged            {} {} ({}{}) on day {:.0}{}",
            f.kind.replace('_', " "),
            f.name,
            f.problem,
            f.window_days
                .map(|w| format!(", first {w} days"))
                .unwrap_or_default(),
            f.flagged_day,
            f.days_after_first_failure
                .map(|d| format!(", {d:.0} days after its first failure"))
                .unwrap_or_default()
        );
    }
    for c in &s.campaigns {
        let p = &c.progress;
        println!(
            "campaign                  {} ({}): {} members, {} offered, {} attached, {} held; {} reached, {} accepted, {} faults confirmed",
            c.title, c.state.replace('_', " "), p.members, p.offered, p.attached, p.held, p.reached, p.accepted, p.faults_confirmed
        );
    }
    if s.skipped_samples > 0 {
        println!(
            "note: the simulator skipped {} sample periods: lower --speedup for a faithful run",
            s.skipped_samples
        );
    }
    if let (Some(p), Some(path)) = (&s.report_period, &s.report_path) {
        println!("after-sales review        {p}: {}", path.display());
    }
    println!("wall time                 {:.0} s", s.wall_seconds);
}

/// Writes the summary as JSON.
pub fn write_summary(s: &Summary, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(s)?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Problem;
    use crate::tickets::{TicketState, Tier};
    use protocol::command::OfferKind;

    fn worked(
        id: i64,
        tier: Tier,
        offer: OfferKind,
        moves: &[(&str, &str)],
        sla: SlaState,
    ) -> Worked {
        Worked {
            item: QueueItem {
                id,
                ticket_ref: format!("T-{id}"),
                device_id: format!("d-{id}"),
                model: None,
                batch: None,
                problem: Problem::Battery,
                state: TicketState::Resolved,
                tier,
                offer_kind: offer,
                assignee: None,
                risk: 0.5,
                opened_ms: 0,
                due_ms: 1,
                sla_window_ms: 1,
                sla_paused_ms: None,
                closed_ms: Some(1),
                outcome: Some("repaired".into()),
                outcome_category: None,
                version: 1,
            },
            log: moves
                .iter()
                .map(|(to, actor)| LogEntry {
                    at_ms: 0,
                    kind: "move".into(),
                    from: None,
                    to: (*to).into(),
                    actor: (*actor).into(),
                    note: None,
                })
                .collect(),
            sla,
            rating: None,
        }
    }

    #[test]
    fn sla_counts_the_accepted_tickets_the_team_worked_and_answers_count_by_where() {
        let tickets = vec![
            worked(
                1,
                Tier::High,
                OfferKind::Inspection,
                &[("accepted", "device"), ("resolved", "ana")],
                SlaState::Met,
            ),
            worked(
                2,
                Tier::High,
                OfferKind::Inspection,
                &[("accepted", "customer")],
                SlaState::Breached,
            ),
            // Declined and cancelled offers were never the team's to work.
            worked(
                3,
                Tier::High,
                OfferKind::Inspection,
                &[("declined", "device")],
                SlaState::Met,
            ),
            worked(
                4,
                Tier::Medium,
                OfferKind::Inspection,
                &[("cancelled", "policy")],
                SlaState::Met,
            ),
            // Tips settle themselves.
            worked(
                5,
                Tier::Low,
                OfferKind::SelfServiceTip,
                &[("accepted", "device")],
                SlaState::Met,
            ),
        ];
        let mut s = summarise_empty();
        desk_figures(&mut s, &tickets);
        let high = &s.sla_met_by_tier["high"];
        assert_eq!((high.met, high.missed, high.open), (1, 1, 0));
        assert_eq!(high.share_met, Some(0.5));
        assert_eq!(s.sla_met_by_tier["medium"], SlaTally::default());
        assert_eq!(s.sla_met_by_tier["low"].met, 0);
        assert_eq!(s.customer_answers["device"], 3);
        assert_eq!(s.customer_answers["progress_page"], 1);
        assert_eq!(s.outcomes["repaired"], 5);
        assert!(s.ratings.is_none());
    }

    fn summarise_empty() -> Summary {
        let fleet = Fleet::generate(1, 0, 1, DEFAULT_START);
        summarise(&fleet, &[])
    }
}
