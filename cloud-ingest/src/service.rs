//! Wiring: the consumer feeds the pipeline in batches, the workers drain the outboxes,
//! the model is reloaded when its file changes (or on SIGHUP), and a stop signal ends
//! it all gracefully: the batch in hand commits and is acknowledged, workers finish
//! their pass, the session disconnects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use protocol::clock::Clock;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::ingest::consumer::{Consumer, MqttSettings};
use crate::ingest::{Delivery, OpenedTicket, Pipeline};
use crate::ops::events::{Emit, ModelRefused, ModelReloaded};
use crate::ops::http::{self, Health};
use crate::ops::metrics::Metrics;
use crate::score::ModelSlot;
use crate::store::Store;

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Messages accepted.
    pub accepted: u64,
    /// Redeliveries dropped.
    pub duplicates: u64,
    /// Messages dead-lettered.
    pub rejected: u64,
    /// Tickets opened.
    pub tickets: u64,
}

/// Handles a caller can watch while the service runs.
#[derive(Clone, Default)]
pub struct Observers {
    /// New tickets, as they commit.
    pub tickets: Option<mpsc::UnboundedSender<OpenedTicket>>,
    /// Turns true once the subscription is in place.
    pub ready: Option<watch::Sender<bool>>,
    /// The HTTP endpoint's address once bound.
    pub http_bound: Option<Arc<std::sync::Mutex<Option<SocketAddr>>>>,
    /// The metrics (a fresh set when `None`).
    pub metrics: Option<Arc<Metrics>>,
}

/// MQTT settings from the configuration.
pub fn mqtt_settings(config: &Config) -> anyhow::Result<MqttSettings> {
    let url: protocol::BrokerUrl = config.mqtt.url.parse().context("mqtt.url")?;
    let endpoint = protocol::Endpoint::new(url)
        .with_credentials(config.mqtt.username.clone(), config.mqtt.password.clone())
        .with_ca_file(config.mqtt.ca_file.as_deref())
        .context("mqtt.ca_file")?;
    Ok(MqttSettings {
        endpoint,
        client_id: config.mqtt.client_id.clone(),
        filters: config.filters()?,
        keep_alive: Duration::from_secs(config.mqtt.keep_alive_s.max(5)),
        max_packet_bytes: config.mqtt.max_packet_bytes,
    })
}

/// On a store without users, creates `admin` and prints its token once: the desk is
/// reachable from the first start, and the token is never shown again.
async fn first_admin(store: &Store, now_ms: u64) -> anyhow::Result<()> {
    if !store
        .users()
        .await
        .context("reading the desk's users")?
        .is_empty()
    {
        return Ok(());
    }
    let (user, token) = store
        .add_user("admin", crate::desk::auth::Role::Admin, "setup", now_ms)
        .await
        .context("creating the first admin")?;
    eprintln!(
        "created desk user {:?} (role admin); its API token, shown only now:\n  {token}\n  add people with `cloud-ingest users add NAME --role agent`",
        user.name
    );
    Ok(())
}

/// Runs ingest until `stop` turns true (or a batch cannot be committed).
pub async fn run(
    config: Config,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
    observers: Observers,
) -> anyhow::Result<RunReport> {
    config.validate()?;
    if let Some(addr) = config.embedded_broker()? {
        start_broker(addr)?;
    }
    let store = Store::open(
        &config.store.url,
        config.store.max_connections,
        config.store.sqlite_synchronous,
    )
    .await
    .with_context(|| format!("opening the store {}", redact(&config.store.url)))?;
    first_admin(&store, clock.now().0).await?;
    let model =
        Arc::new(ModelSlot::load(config.model.path.as_deref()).context("loading the risk model")?);
    crate::registry::start(&store, &model, clock.now().0)
        .await
        .context("registering the risk model")?;
    tracing::info!(model = %model.current().version, challenger = ?model.challenger().map(|c| c.version.clone()), store = %redact(&config.store.url), "cloud-ingest starting");
    let metrics = observers.metrics.clone().unwrap_or_default();
    let settings = mqtt_settings(&config)?;
    let mut consumer = Consumer::start(&settings, metrics.clone());

    let (workers_stop_tx, workers_stop) = watch::channel(false);
    let mut workers = tokio::task::JoinSet::new();
    workers.spawn(config.command_worker().run(
        store.clone(),
        consumer.client.clone(),
        consumer.connected.clone(),
        clock.clone(),
        metrics.clone(),
        workers_stop.clone(),
    ));
    workers.spawn(config.breach_recorder().run(
        store.clone(),
        clock.clone(),
        metrics.clone(),
        workers_stop.clone(),
    ));
    if let Some(w) = config.webhook_worker() {
        workers.spawn(w.run(store.clone(), metrics.clone(), workers_stop.clone()));
    }
    if let Some(e) = config.exporter() {
        workers.spawn(e.run(store.clone(), metrics.clone(), workers_stop.clone()));
    }
    workers.spawn(config.pruner().run(
        store.clone(),
        clock.clone(),
        metrics.clone(),
        workers_stop.clone(),
    ));
    workers.spawn(config.rollout().run(
        store.clone(),
        clock.clone(),
        metrics.clone(),
        workers_stop.clone(),
    ));
    workers.spawn(config.watcher().run(
        store.clone(),
        clock.clone(),
        metrics.clone(),
        workers_stop.clone(),
    ));
    workers.spawn(watch_model(
        store.clone(),
        clock.clone(),
        model.clone(),
        Duration::from_secs(config.model.reload_check_s.max(1)),
        metrics.clone(),
        workers_stop.clone(),
    ));
    if let Some(addr) = config.http.listen {
        let health = Health {
            mqtt: consumer.connected.clone(),
            store: store.clone(),
            model: model.clone(),
            gate: Arc::new(config.model.gate.clone()),
            metrics: metrics.clone(),
            clock: clock.clone(),
            links: config.link_settings(),
            tradein: Arc::new(config.tradein.clone()),
            watch: Arc::new(config.watcher()),
            policy: Arc::new(config.policy.clone()),
        };
        let bound = start_http(&mut workers, addr, health, workers_stop.clone()).await;
        if let (Some(a), Some(slot)) = (bound, &observers.http_bound) {
            *slot.lock().expect("bound lock") = Some(a);
        }
    }
    if let Some(ready) = observers.ready.clone() {
        let mut sub = consumer.subscribed.clone();
        tokio::spawn(async move {
            if sub.wait_for(|s| *s).await.is_ok() {
                let _ = ready.send(true);
            }
        });
    }

    let mut pipeline = Pipeline::new(
        store.clone(),
        model.clone(),
        config.policy.clone(),
        config.pipeline_settings(),
        metrics.clone(),
        clock.clone(),
    );
    let mut report = RunReport::default();
    let result = consume(
        &mut consumer,
        &mut pipeline,
        &config,
        stop,
        &observers,
        &mut report,
    )
    .await;

    let _ = workers_stop_tx.send(true);
    while workers.join_next().await.is_some() {}
    consumer.stop().await;
    store.close().await;
    tracing::info!(
        accepted = report.accepted,
        duplicates = report.duplicates,
        rejected = report.rejected,
        tickets = report.tickets,
        "cloud-ingest stopped"
    );
    result.map(|_| report)
}

/// Starts the in-process broker `mqtt.embedded` asks for.
#[cfg(feature = "embedded-broker")]
fn start_broker(addr: SocketAddr) -> anyhow::Result<()> {
    let bound = crate::broker::start(addr)?;
    tracing::info!("in-process MQTT broker on mqtt://{bound}");
    Ok(())
}

#[cfg(not(feature = "embedded-broker"))]
fn start_broker(addr: SocketAddr) -> anyhow::Result<()> {
    anyhow::bail!("mqtt.embedded asks for a broker on {addr}, but this build has none")
}

/// Serves the desk, `/healthz` and `/metrics` among the workers; the address once bound.
async fn start_http(
    workers: &mut tokio::task::JoinSet<()>,
    addr: SocketAddr,
    health: Health,
    stop: watch::Receiver<bool>,
) -> Option<SocketAddr> {
    let (bound_tx, bound_rx) = oneshot::channel();
    workers.spawn(async move {
        if let Err(e) = http::serve(addr, health, stop, bound_tx).await {
            tracing::error!("HTTP endpoint on {addr}: {e}");
        }
    });
    let bound = bound_rx.await.ok()?;
    tracing::info!("the desk on http://{bound}/desk, its API under /api/v1; /healthz and /metrics");
    Some(bound)
}

async fn consume(
    consumer: &mut Consumer,
    pipeline: &mut Pipeline,
    config: &Config,
    mut stop: watch::Receiver<bool>,
    observers: &Observers,
    report: &mut RunReport,
) -> anyhow::Result<()> {
    let wait = config.batch_wait();
    let max = config.ingest.batch_max;
    loop {
        let first = tokio::select! {
            p = consumer.deliveries.recv() => match p { Some(p) => p, None => return Ok(()) },
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let mut publishes = vec![first];
        let deadline = tokio::time::Instant::now() + wait;
        while publishes.len() < max {
            match tokio::time::timeout_at(deadline, consumer.deliveries.recv()).await {
                Ok(Some(p)) => publishes.push(p),
                _ => break,
            }
        }
        let batch: Vec<Delivery> = publishes
            .iter()
            .map(|p| Delivery {
                topic: p.topic.clone(),
                payload: p.payload.to_vec(),
            })
            .collect();
        // Not acknowledged unless committed. Processing waits out an unavailable store;
        // stopping meanwhile leaves the batch unacknowledged, for the broker to
        // redeliver to the next start.
        let outcome = tokio::select! {
            o = pipeline.process(&batch) => o,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        for p in &publishes {
            // The poll task never blocks, so this wait is short (pitfall 1).
            consumer
                .client
                .ack(p)
                .await
                .context("acknowledging to the broker")?;
        }
        report.accepted += outcome.accepted;
        report.duplicates += outcome.duplicates;
        report.rejected += outcome.rejected;
        report.tickets += outcome.tickets.len() as u64;
        for t in outcome.tickets {
            if let Some(tx) = &observers.tickets {
                let _ = tx.send(t);
            }
        }
    }
}

async fn watch_model(
    store: Store,
    clock: Arc<dyn Clock>,
    model: Arc<ModelSlot>,
    every: Duration,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = tokio::time::sleep(every) => false,
            _ = hangup => true,
            _ = stop.wait_for(|s| *s) => return,
        };
        let result = if forced {
            model.reload()
        } else {
            model.reload_if_changed()
        };
        match result {
            Ok(Some(version)) => {
                ModelReloaded { version: &version }.emit(&metrics);
                if let Err(error) = crate::registry::adopt_file(&store, &model, clock.now().0).await
                {
                    ModelRefused { error: &error }.emit(&metrics);
                }
            }
            Ok(None) => {}
            Err(error) => ModelRefused { error: &error }.emit(&metrics),
        }
        // Another replica (or the desk) may have promoted or rolled back.
        let before = model.current().version.clone();
        match crate::registry::sync(&store, &model).await {
            Ok(true) if model.current().version != before => ModelReloaded {
                version: &model.current().version,
            }
            .emit(&metrics),
            Ok(_) => {}
            Err(error) => ModelRefused { error: &error }.emit(&metrics),
        }
    }
}

/// A store URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
