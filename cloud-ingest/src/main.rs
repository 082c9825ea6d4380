//! `cloud-ingest`: the cloud side of the fleet service.
//!
//! `demo` runs everything in one process on embedded defaults; `serve` is the
//! production mode against an external broker, PostgreSQL and InfluxDB.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cloud_ingest::config::{Config, InfluxConfig};
#[cfg(feature = "demo")]
use cloud_ingest::demo::{self, DemoOptions};
use cloud_ingest::service::{self, Observers};
use cloud_ingest::store::{SqliteSync, Store};
use logging::LogFormat;
use protocol::clock::{Clock, SystemClock};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "cloud-ingest",
    version,
    about = "Ingest device telemetry, score failure risk and open proactive service tickets."
)]
struct Cli {
    /// Log format: human or json.
    #[arg(long, global = true, env = logging::FORMAT_ENV, default_value = "human")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: in-process broker, SQLite, the bundled model and
    /// a simulated fleet on the real agent code; print tickets as they open and a
    /// summary against the simulation's ground truth.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Run the cloud side and the desk. With no configuration, all on this machine: an
    /// in-process broker on 127.0.0.1:1883, SQLite in ./data, the bundled model and the
    /// desk on http://127.0.0.1:8080. Configured: an external broker, PostgreSQL and
    /// InfluxDB. Stops gracefully on SIGTERM or Ctrl-C; SIGHUP reloads the model.
    Serve(Box<ServeArgs>),
    /// List the tickets in a store as JSON lines.
    Tickets {
        /// Store URL: sqlite://PATH or postgres://...
        #[arg(
            long,
            env = "FLEET_STORE_URL",
            default_value = "sqlite://data/fleet.db"
        )]
        store: String,
    },
    /// Manage the desk's users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
        /// Store URL: sqlite://PATH or postgres://...
        #[arg(
            long,
            global = true,
            env = "FLEET_STORE_URL",
            default_value = "sqlite://data/fleet.db"
        )]
        store: String,
    },
    /// The model registry (docs/features.md, "Champion and challenger"): register an
    /// artifact `models train` wrote, optionally as the challenger; list the versions
    /// and aliases. Promotion and rollback are the desk's (`/desk/models`).
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
        /// Store URL: sqlite://PATH or postgres://...
        #[arg(
            long,
            global = true,
            env = "FLEET_STORE_URL",
            default_value = "sqlite://data/fleet.db"
        )]
        store: String,
    },
    /// Write the training set the desk's outcomes make: DIR/labels.csv (every resolved
    /// ticket's feature vector as scored when it opened, labelled 1 when a fault was
    /// confirmed, 0 when none was found), DIR/tradeins.csv (every graded trade-in: the
    /// same columns, labelled by what the bench found, then the bench's battery and
    /// grades beside the quote's telemetry) and DIR/labels.json (what they hold). Train
    /// with `models train --csv DIR/labels.csv --mode-col mode --out model.json`.
    ExportLabels {
        /// Store URL: sqlite://PATH or postgres://...
        #[arg(
            long,
            env = "FLEET_STORE_URL",
            default_value = "sqlite://data/fleet.db"
        )]
        store: String,
        /// The directory to write to (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// A graded trade-in whose bench battery is below this (%) is labelled a fault
        /// (the refurbish bar's battery, `tradein.refurbish.battery_at_least`).
        #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
        battery_floor_pct: u8,
    },
    /// Run the cohort watch now: every cohort (model, batch, firmware, purchase month)
    /// and problem against the rest of the fleet at the same ages, batches' first
    /// 30/60/90 days, firmware against its predecessor; print and record what stands out
    /// (docs/reports.md). `serve` runs it on a schedule too.
    Cohorts(CohortsArgs),
    /// Write a period's after-sales review report (docs/reports.md): the summary, the key
    /// figures against the period before, problem frequency, the cohort table, the
    /// trend, notable cases, root causes, satisfaction and the action items under
    /// review. `--format html` is one self-contained file that prints well; `md` is for
    /// pasting; `json` follows the documented schema.
    Report(ReportArgs),
    /// List the devices in a store as JSON lines: liveness, message counts, gaps, the
    /// current sequence epoch and how often the device restarted its count.
    Devices {
        /// Store URL: sqlite://PATH or postgres://...
        #[arg(
            long,
            env = "FLEET_STORE_URL",
            default_value = "sqlite://data/fleet.db"
        )]
        store: String,
    },
}

/// `cloud-ingest cohorts`: the cohort watch on demand.
#[derive(clap::Args)]
struct CohortsArgs {
    /// Store URL: sqlite://PATH or postgres://...
    #[arg(
        long,
        env = "FLEET_STORE_URL",
        default_value = "sqlite://data/fleet.db"
    )]
    store: String,
    /// Configuration file (TOML): its `[cohorts]` section sets the false discovery rate,
    /// the fewest events to flag and the early-warning windows.
    #[arg(long, short, env = "FLEET_CONFIG")]
    config: Option<PathBuf>,
    /// Only show what would be flagged; record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the whole table as JSON instead of the flags as text.
    #[arg(long)]
    json: bool,
}

/// `cloud-ingest report`: a period's review as a file.
#[derive(clap::Args)]
struct ReportArgs {
    /// Store URL: sqlite://PATH or postgres://...
    #[arg(
        long,
        env = "FLEET_STORE_URL",
        default_value = "sqlite://data/fleet.db"
    )]
    store: String,
    /// Configuration file (TOML): `[cohorts]` for the cohort table, `desk.public_url`
    /// for the links.
    #[arg(long, short, env = "FLEET_CONFIG")]
    config: Option<PathBuf>,
    /// The period: a month (`2026-11`) or an ISO week (`2026-W48`).
    #[arg(long)]
    period: String,
    /// The file format.
    #[arg(long, value_enum, default_value = "html")]
    format: cloud_ingest::report::Format,
    /// Where to write it; standard output when not given.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The desk's address, for the report's links to tickets and flags (default:
    /// `desk.public_url`, else http://127.0.0.1:8080).
    #[arg(long)]
    link_base: Option<String>,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Register a model artifact (checked against this build's feature schema).
    Register {
        /// The artifact, as `models train --out` wrote it.
        artifact: PathBuf,
        /// Also make it the challenger: scored beside the champion from now on.
        #[arg(long)]
        challenger: bool,
    },
    /// Print the registry as JSON: aliases, versions and the latest changes.
    List,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user and print its API token (shown only once).
    Add {
        /// The user's name: 1 to 64 ASCII letters, digits, '.', '_' or '-'.
        name: String,
        /// agent (service desk), recycler (recycling desk), analyst (read all), admin.
        #[arg(long)]
        role: String,
    },
    /// List the users as JSON lines.
    List,
}

#[cfg(feature = "demo")]
#[derive(clap::Args)]
struct DemoArgs {
    /// Devices in the simulated fleet.
    #[arg(long, default_value_t = 300)]
    devices: usize,
    /// Simulated days.
    #[arg(long, default_value_t = 120)]
    days: u32,
    /// Fleet seed (the bundled model was trained on seed 1).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Simulated seconds per wall second. The default keeps a 300-device run and its
    /// ingest within two cores; the run reports skipped samples if the machine cannot
    /// keep up.
    #[arg(long, default_value_t = 50_000.0)]
    speedup: f64,
    /// Where the demo's SQLite database goes (replaced on every run).
    #[arg(long, default_value = "data/demo")]
    data_dir: PathBuf,
    /// Also write the summary as JSON here.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Serve the desk (and /healthz, /metrics) here: a simulated service team works the
    /// tickets through it while the demo runs, and it stays up on the final state until
    /// Ctrl-C. Port 0 takes any free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// End when the run ends instead of serving the desk on until Ctrl-C (for scripts).
    #[arg(long)]
    exit: bool,
    /// Do not print each ticket.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML); every key has a default. See README.md.
    #[arg(long, short, env = "FLEET_CONFIG")]
    config: Option<PathBuf>,
    /// MQTT broker URL (mqtt://HOST:PORT or mqtts://HOST:PORT).
    #[arg(long, env = "FLEET_MQTT_URL")]
    mqtt_url: Option<String>,
    /// Run the in-process broker on --mqtt-url's address (true) or not (false); by
    /// default, exactly when no broker URL is given.
    #[arg(long, env = "FLEET_MQTT_EMBEDDED", value_name = "BOOL")]
    embedded_broker: Option<bool>,
    /// MQTT client id of this replica's persistent session.
    #[arg(long, env = "FLEET_MQTT_CLIENT_ID")]
    client_id: Option<String>,
    /// Share the subscription with the other replicas of this group.
    #[arg(long, env = "FLEET_MQTT_SHARE_GROUP")]
    share_group: Option<String>,
    /// MQTT username.
    #[arg(long, env = "FLEET_MQTT_USERNAME")]
    mqtt_username: Option<String>,
    /// MQTT password.
    #[arg(long, env = "FLEET_MQTT_PASSWORD", hide_env_values = true)]
    mqtt_password: Option<String>,
    /// Store URL: sqlite://PATH or postgres://USER:PASS@HOST:PORT/DB.
    #[arg(long, env = "FLEET_STORE_URL", hide_env_values = true)]
    store: Option<String>,
    /// InfluxDB URL for raw telemetry (needs org, bucket and token too).
    #[arg(long, env = "FLEET_INFLUX_URL")]
    influx_url: Option<String>,
    /// InfluxDB organisation.
    #[arg(long, env = "FLEET_INFLUX_ORG")]
    influx_org: Option<String>,
    /// InfluxDB bucket.
    #[arg(long, env = "FLEET_INFLUX_BUCKET")]
    influx_bucket: Option<String>,
    /// InfluxDB token.
    #[arg(long, env = "FLEET_INFLUX_TOKEN", hide_env_values = true)]
    influx_token: Option<String>,
    /// Model artifact (the bundled model when unset).
    #[arg(long, env = "FLEET_MODEL_PATH")]
    model: Option<PathBuf>,
    /// Where the desk's pages and API, /healthz and /metrics listen.
    #[arg(long, env = "FLEET_HTTP_LISTEN")]
    http: Option<SocketAddr>,
    /// Print the effective configuration (secrets included) and exit.
    #[arg(long)]
    print_config: bool,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        let set = |slot: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                *slot = v.clone();
            }
        };
        set(&mut c.mqtt.url, &self.mqtt_url);
        set(&mut c.mqtt.client_id, &self.client_id);
        set(&mut c.store.url, &self.store);
        if self.embedded_broker.is_some() {
            c.mqtt.embedded = self.embedded_broker;
        }
        if self.share_group.is_some() {
            c.mqtt.share_group = self.share_group.clone();
        }
        if self.mqtt_username.is_some() {
            c.mqtt.username = self.mqtt_username.clone();
        }
        if self.mqtt_password.is_some() {
            c.mqtt.password = self.mqtt_password.clone();
        }
        if self.model.is_some() {
            c.model.path = self.model.clone();
        }
        if self.http.is_some() {
            c.http.listen = self.http;
        }
        if let Some(url) = &self.influx_url {
            let (org, bucket) = match (&self.influx_org, &self.influx_bucket, &c.influx) {
                (Some(o), Some(b), _) => (o.clone(), b.clone()),
                (o, b, Some(i)) => (
                    o.clone().unwrap_or(i.org.clone()),
                    b.clone().unwrap_or(i.bucket.clone()),
                ),
                _ => anyhow::bail!(
                    "--influx-url needs --influx-org and --influx-bucket (or an [influx] section)"
                ),
            };
            let token = c
                .influx
                .as_ref()
                .map(|i| i.token.clone())
                .unwrap_or_default();
            let batch = c.influx.as_ref().map(|i| i.batch).unwrap_or(5000);
            c.influx = Some(InfluxConfig {
                url: url.clone(),
                org,
                bucket,
                token,
                batch,
            });
        }
        if let (Some(i), Some(t)) = (c.influx.as_mut(), &self.influx_token) {
            i.token = t.clone();
        }
        c.validate()?;
        Ok(c)
    }
}

fn init_logging(format: LogFormat, default: &str) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_owned());
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let sub = logging::subscriber(format, &filter, ansi, std::io::stderr)?;
    tracing::subscriber::set_global_default(sub).context("setting up logging")?;
    Ok(())
}

/// Turns true on SIGTERM or Ctrl-C.
fn stop_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping: finishing the batch in hand");
        let _ = tx.send(true);
    });
    rx
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        #[cfg(feature = "demo")]
        Command::Demo(a) => {
            init_logging(cli.log_format, "warn,rumqttd=off,rumqttc=error")?;
            let opts = DemoOptions {
                devices: a.devices,
                days: a.days,
                seed: a.seed,
                speedup: a.speedup,
                data_dir: a.data_dir,
                http: Some(a.http),
                print_tickets: !a.quiet,
                team: demo::team::TeamConfig::default(),
            };
            let stop = stop_on_signal();
            let finished = demo::run(&opts, stop.clone()).await?;
            demo::print_summary(&finished.summary);
            if let Some(p) = &a.summary_json {
                demo::write_summary(&finished.summary, p)?;
                println!("summary written to {}", p.display());
            }
            if let (false, Some(desk)) = (a.exit, finished.desk) {
                demo::keep_serving(desk, stop).await?;
            }
        }
        Command::Serve(a) => {
            init_logging(cli.log_format, "info,rumqttd=off,rumqttc=warn,sqlx=warn")?;
            let config = a.config()?;
            if a.print_config {
                print!("{}", toml::to_string(&config)?);
                return Ok(());
            }
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            service::run(config, clock, stop_on_signal(), Observers::default()).await?;
        }
        Command::Tickets { store } => {
            let store = Store::open(&store, 2, SqliteSync::Full).await?;
            for t in store.tickets().await? {
                println!("{}", serde_json::to_string(&t)?);
            }
            store.close().await;
        }
        Command::Users { command, store } => {
            let store = Store::open(&store, 2, SqliteSync::Full).await?;
            match command {
                UsersCommand::Add { name, role } => {
                    let role: cloud_ingest::desk::auth::Role = role.parse().map_err(|e| {
                        anyhow::anyhow!("--role: {e}; use agent, recycler, analyst or admin")
                    })?;
                    let (user, token) = store
                        .add_user(&name, role, "cli", SystemClock.now().0)
                        .await
                        .with_context(|| format!("adding user {name:?}"))?;
                    eprintln!(
                        "added {} ({}); its API token, shown only now:",
                        user.name, user.role
                    );
                    println!("{token}");
                }
                UsersCommand::List => {
                    for u in store.users().await? {
                        println!("{}", serde_json::to_string(&u)?);
                    }
                }
            }
            store.close().await;
        }
        Command::Models { command, store } => {
            let store = Store::open(&store, 2, SqliteSync::Full).await?;
            let now = SystemClock.now().0;
            match command {
                ModelsCommand::Register {
                    artifact,
                    challenger,
                } => {
                    let bytes = std::fs::read(&artifact)
                        .with_context(|| format!("reading {}", artifact.display()))?;
                    let (a, new) = cloud_ingest::registry::register(&store, &bytes, "cli", now)
                        .await
                        .with_context(|| format!("registering {}", artifact.display()))?;
                    eprintln!(
                        "{} {} ({}, threshold {:.3})",
                        if new {
                            "registered"
                        } else {
                            "already registered:"
                        },
                        a.version,
                        a.model.kind(),
                        a.threshold
                    );
                    if challenger {
                        // Serving replicas pick the challenger up at their next check.
                        // A registry no service has started yet takes the bundled model
                        // as champion first, as `serve` would.
                        let slot = cloud_ingest::score::ModelSlot::load(None)?;
                        cloud_ingest::registry::start(&store, &slot, now).await?;
                        cloud_ingest::registry::sync(&store, &slot).await?;
                        cloud_ingest::registry::set_challenger(
                            &store,
                            &slot,
                            "cli",
                            Some(&a.version),
                            now,
                        )
                        .await
                        .with_context(|| format!("making {} the challenger", a.version))?;
                        eprintln!("{} is the challenger", a.version);
                    }
                    println!("{}", a.version);
                }
                ModelsCommand::List => {
                    let out = serde_json::json!({
                        "aliases": store.model_aliases().await?,
                        "versions": store.model_versions().await?,
                        "changes": store.model_changes(50).await?,
                    });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                }
            }
            store.close().await;
        }
        Command::ExportLabels {
            store,
            out,
            battery_floor_pct,
        } => {
            let store = Store::open(&store, 2, SqliteSync::Full).await?;
            let m = cloud_ingest::training_set::export(
                &store,
                &out,
                SystemClock.now().0,
                battery_floor_pct,
            )
            .await
            .with_context(|| format!("exporting labels to {}", out.display()))?;
            store.close().await;
            let skipped: Vec<String> = m
                .tally
                .skipped
                .iter()
                .map(|(why, n)| {
                    format!(
                        "{n} {}",
                        serde_json::to_value(why)
                            .unwrap_or_default()
                            .as_str()
                            .unwrap_or("?")
                    )
                })
                .collect();
            eprintln!(
                "wrote {} rows ({} with a confirmed fault) to {}{}",
                m.tally.rows,
                m.tally.positives,
                out.join(cloud_ingest::training_set::CSV).display(),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; skipped {}", skipped.join(", "))
                }
            );
            eprintln!(
                "wrote {} graded trade-ins ({} with a fault on the bench) to {}",
                m.tradeins.rows,
                m.tradeins.positives,
                out.join(cloud_ingest::training_set::TRADEINS_CSV).display()
            );
            eprintln!("train with: {}", m.train);
        }
        Command::Cohorts(args) => cohorts(args).await?,
        Command::Report(args) => report(args).await?,
        Command::Devices { store } => {
            let store = Store::open(&store, 2, SqliteSync::Full).await?;
            for d in store.device_statuses().await? {
                println!("{}", serde_json::to_string(&d)?);
            }
            store.close().await;
        }
    }
    Ok(())
}

/// Writes a period's review report.
async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(p) => cloud_ingest::config::Config::from_file(p)
            .with_context(|| format!("reading {}", p.display()))?,
        None => cloud_ingest::config::Config::default(),
    };
    config
        .cohorts
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // A bad period is refused before the store is opened.
    cloud_ingest::tradein::routing::period_range(&args.period)
        .map_err(|e| anyhow::anyhow!("--period: {e}"))?;
    let base = args
        .link_base
        .or(config.desk.public_url.clone())
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let store = Store::open(&args.store, 2, SqliteSync::Full).await?;
    let made =
        cloud_ingest::report::make(&store, &args.period, &config.cohorts, SystemClock.now().0)
            .await;
    store.close().await;
    let text = args.format.render(&made?, &base);
    match &args.out {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Runs the cohort watch on a store and prints what stands out.
async fn cohorts(args: CohortsArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(p) => cloud_ingest::config::Config::from_file(p)
            .with_context(|| format!("reading {}", p.display()))?,
        None => cloud_ingest::config::Config::default(),
    };
    config
        .cohorts
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = Store::open(&args.store, 2, SqliteSync::Full).await?;
    let now = SystemClock.now().0;
    let report = if args.dry_run {
        let facts = store.fleet_facts().await?;
        cloud_ingest::cohorts::watch::run(&facts, &config.cohorts, now)
    } else {
        let metrics = cloud_ingest::ops::metrics::Metrics::new();
        config.watcher().check(&store, now, None, &metrics).await?
    };
    store.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} cells and comparisons tested (false discovery rate {}); {} flagged{}",
        report.tests,
        config.cohorts.fdr,
        report.flags.len(),
        if args.dry_run { " (not recorded)" } else { "" }
    );
    for f in &report.flags {
        let e = &f.evidence;
        println!(
            "  {} {} {}{}: {} observed, {:.1} expected (q = {:.2e}), rate {:.3}/device-year [{:.3}, {:.3}], shrunk {:.3}",
            f.kind.as_str(),
            f.cohort,
            f.problem.map_or("restarts", |p| p.as_str()),
            f.window_days.map(|w| format!(", first {w} days")).unwrap_or_default(),
            e.observed,
            e.expected,
            e.q_value,
            e.rate,
            e.rate_low,
            e.rate_high,
            e.shrunk_rate
        );
    }
    let excluded: u64 = report.excluded.iter().map(|x| x.outcomes).sum();
    println!("{excluded} outcomes kept out of the rates (no fault found, user damage, abuse)");
    Ok(())
}
