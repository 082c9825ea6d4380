//! The device loop: samples on schedule, keeps the MQTT session and moves messages from
//! the spool to the broker.
//!
//! One async task per device. The rumqttc event loop is polled in the same `select!`
//! that drives sampling, and publishing uses `try_publish` bounded by our own in-flight
//! limit, so the loop never awaits the request channel it alone drains. On any
//! connection error the client and event loop are dropped and rebuilt after an
//! exponential, jittered backoff; rumqttc's own queue is never relied on. The spool is
//! the source of truth: an entry leaves only when the PUBACK for its packet id arrives,
//! and after every (re)connect every pending entry is sent again, in seq order, marked
//! historical.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use protocol::broker::{BrokerUrlError, Endpoint};
use protocol::clock::Clock;
use protocol::command::Offer;
use protocol::ids::{CommandId, Seq, TenantId};
use protocol::reboot::RebootReason;
use protocol::retry::Backoff;
use protocol::topic::Topic;
use protocol::{Channel, Limits, Message, Timestamp};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, watch};

use crate::agent::Agent;
use crate::hal::Platform;
use crate::spool::{Spool, SpoolError};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The broker.
    pub endpoint: Endpoint,
    /// The tenant the device belongs to (the topic's second level).
    pub tenant: TenantId,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Reconnect delays (jittered, so a fleet that lost its broker does not return at once).
    pub reconnect: Backoff,
    /// Publishes awaiting their PUBACK at most.
    pub max_inflight: usize,
}

impl SessionConfig {
    /// A session to the broker at `url` (see [`protocol::BrokerUrl`]) with the default timings,
    /// no credentials and no CA bundle (see [`Endpoint`] to add them).
    pub fn from_url(url: &str, tenant: TenantId) -> Result<Self, BrokerUrlError> {
        Ok(SessionConfig::new(Endpoint::new(url.parse()?), tenant))
    }

    /// A session to `endpoint` with the default timings.
    pub fn new(endpoint: Endpoint, tenant: TenantId) -> Self {
        SessionConfig {
            endpoint,
            tenant,
            keep_alive: Duration::from_secs(30),
            reconnect: Backoff::new(Duration::from_millis(500), Duration::from_secs(300)),
            max_inflight: 16,
        }
    }
}

/// What the host firmware does between samples. The binary's host does little; the
/// simulator's host runs the physics and injects faults.
pub trait Host {
    /// The hardware.
    fn platform(&mut self) -> &mut dyn Platform;
    /// Brings the host up to `now`; returns what the firmware saw happen.
    fn advance(&mut self, now: Timestamp) -> Vec<HostEvent>;
    /// True while the device has a network path (a simulator can cut it).
    fn network_up(&self) -> bool {
        true
    }
    /// Shows an offer to the customer.
    fn offer(&mut self, command_id: &CommandId, offer: &Offer);
    /// Stops showing an offer the cloud withdrew.
    fn withdraw(&mut self, command_id: &CommandId);
    /// Customer answers to offers shown earlier: (command, accepted).
    fn offer_answers(&mut self) -> Vec<(CommandId, bool)> {
        Vec::new()
    }
    /// Called after every step with the agent, for the host to persist its state.
    fn persist(&mut self, agent: &mut Agent);
}

/// Something the host firmware observed.
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// An application crashed and was restarted.
    Crash {
        /// Grouping signature.
        signature: String,
        /// The process.
        process: Option<String>,
    },
    /// Storage reported an error.
    StorageError {
        /// A short code.
        code: String,
    },
    /// The device resets now: after a fatal fault (recorded for the next boot) or by
    /// losing power (`fatal` is `None`).
    Reset {
        /// The fault, when the crash handler caught one.
        fatal: Option<RebootReason>,
    },
    /// An orderly shutdown or restart for this reason.
    Shutdown {
        /// Why.
        reason: RebootReason,
    },
}

/// Why the device loop returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Exit {
    /// Asked to stop; the agent shut down in order.
    Stopped,
    /// The device reset or shut down (see the host event); boot it again to go on.
    Reset(HostEvent),
}

/// Why the device loop failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The spool failed: without it nothing can be kept safe.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// How long a stopping device waits for its spool to empty.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

struct Conn {
    device: String,
    client: AsyncClient,
    /// What the event-loop task saw; it ends after the first connection error.
    events: mpsc::UnboundedReceiver<Result<Event, rumqttc::ConnectionError>>,
    /// The task polling rumqttc. Polling lives in its own task because a connection
    /// attempt inside `poll()` is not cancel-safe: a `select!` that drops it on every
    /// sample would never finish connecting when samples come faster than the CONNACK.
    poller: tokio::task::JoinHandle<()>,
    up: bool,
    /// Publishes handed to rumqttc whose packet id is not known yet, in order.
    unassigned: VecDeque<Option<Seq>>,
    /// Packet id → spooled seq, awaiting PUBACK.
    inflight: HashMap<u16, Option<Seq>>,
    /// The last seq handed to rumqttc on this connection.
    cursor: Option<Seq>,
    /// Entries below this seq were created before this connection: sent as historical.
    live_from: Seq,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Dropping the event loop closes the socket without DISCONNECT: the broker
        // publishes the Last Will, as it should for a reset or a lost link.
        self.poller.abort();
    }
}

/// Counters a caller can read after the loop returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Successful connections.
    pub connects: u64,
    /// Messages the broker acknowledged.
    pub acked: u64,
    /// Messages dropped from the spool to stay in budget.
    pub dropped: u64,
    /// Every seq spooled, in order (what the broker should eventually see); recorded
    /// only when `Some`, for bounded runs such as simulations and tests. A device
    /// running for months leaves it `None`.
    pub spooled: Option<Vec<Seq>>,
    /// Every seq the broker acknowledged, in order; recorded only when `Some`, like
    /// `spooled`.
    pub delivered: Option<Vec<Seq>>,
    /// Sample periods skipped because the host fell more than two periods behind its clock.
    pub skipped_samples: u64,
}

/// Runs one device until `stop` turns true or the host resets it.
pub async fn run_device(
    agent: &mut Agent,
    host: &mut (dyn Host + Send),
    spool: &mut Spool,
    config: &SessionConfig,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
    stats: &mut SessionStats,
) -> Result<Exit, SessionError> {
    let limits = Limits::default();
    let mut conn: Option<Conn> = None;
    let mut failures: u32 = 0;
    let mut retry_at = tokio::time::Instant::now();
    let mut next_sample = tokio::time::Instant::now();
    let mut draining: Option<tokio::time::Instant> = None;
    if *stop.borrow_and_update() {
        draining = Some(tokio::time::Instant::now() + DRAIN_GRACE);
    }
    loop {
        if let Some(deadline) = draining {
            // Stopping: give the spool a moment to empty, then say goodbye.
            // Keep (re)connecting until the deadline: a device that was between
            // connections when told to stop still delivers what it holds.
            let idle = conn
                .as_ref()
                .is_none_or(|c| c.unassigned.is_empty() && c.inflight.is_empty());
            if (spool.is_empty() && idle)
                || !host.network_up()
                || tokio::time::Instant::now() >= deadline
            {
                let bye = agent.shutdown(clock.now(), RebootReason::UserRequest);
                if let Some(c) = conn.as_mut().filter(|c| c.up) {
                    goodbye(c, &bye, &config.tenant, &limits).await;
                }
                host.persist(agent);
                return Ok(Exit::Stopped);
            }
        }
        let connected = conn.as_ref().is_some_and(|c| c.up);
        if let Some(c) = conn.as_mut().filter(|c| c.up) {
            pump(c, spool, &config.tenant, &limits, config.max_inflight);
        }
        // Biased, network first: a host that samples faster than real time (the
        // simulator) must not starve the connection.
        tokio::select! {
            biased;
            changed = stop.changed(), if draining.is_none() => {
                if changed.is_err() || *stop.borrow() {
                    draining = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                }
            }
            _ = tokio::time::sleep_until(draining.unwrap_or(next_sample)), if draining.is_some() => {}
            polled = poll(&mut conn) => {
                let Some(c) = conn.as_mut() else { continue };
                match polled {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        c.up = true;
                        failures = 0;
                        stats.connects += 1;
                        c.cursor = None;
                        c.live_from = agent.state().next_seq();
                        let birth = agent.birth(clock.now());
                        publish(c, &birth, &config.tenant, &limits, None);
                        let cmd = Topic::new(config.tenant.clone(), agent.device_id().clone(), Channel::Command);
                        if let Err(e) = c.client.try_subscribe(cmd.to_string(), QoS::AtLeastOnce) {
                            tracing::warn!(error = %e, "subscribe to commands failed");
                        }
                        host.persist(agent);
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(seq) = c.unassigned.pop_front() {
                            c.inflight.insert(pkid, seq);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(Some(seq)) = c.inflight.remove(&ack.pkid) {
                            if spool.retire(seq)? {
                                stats.acked += 1;
                                if let Some(d) = stats.delivered.as_mut() {
                                    d.push(seq);
                                }
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        match protocol::decode(&p.topic, &p.payload, &limits) {
                            Ok(decoded) => {
                                if let Message::Command(cmd) = decoded.message {
                                    let now = clock.now();
                                    let out = agent.handle_command(now, &cmd, host.platform());
                                    if let Some((id, offer)) = &out.offer {
                                        host.offer(id, offer);
                                    }
                                    if let Some(id) = &out.withdrawn {
                                        host.withdraw(id);
                                    }
                                    spool_all(agent, spool, &out.messages, &limits, stats)?;
                                    host.persist(agent);
                                }
                            }
                            Err(e) => tracing::warn!(topic = %p.topic, reason = e.reason(), error = %e, "command rejected"),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "connection lost");
                        conn = None;
                        failures = failures.saturating_add(1);
                        retry_at = tokio::time::Instant::now() + config.reconnect.jittered(failures, fastrand::f64());
                    }
                }
            }
            _ = tokio::time::sleep_until(retry_at), if conn.is_none() && host.network_up() => {
                conn = Some(connect(agent, config, &clock, &limits));
            }
            _ = tokio::time::sleep_until(next_sample), if draining.is_none() => {
                let now = clock.now();
                let out = step(agent, host, now, connected);
                spool_all(agent, spool, &out.messages, &limits, stats)?;
                if let Some(exit) = out.exit {
                    if let (Some(bye), Some(c)) = (&out.goodbye, conn.as_mut().filter(|c| c.up)) {
                        goodbye(c, bye, &config.tenant, &limits).await;
                    }
                    // A reset drops the connection without DISCONNECT: the broker
                    // publishes the Last Will, as after a real reset.
                    host.persist(agent);
                    return Ok(Exit::Reset(exit));
                }
                host.persist(agent);
                if !host.network_up() && conn.is_some() {
                    conn = None;
                }
                let period = u64::from(agent.settings().sample_interval_s) * 1000;
                let step = clock.wall_delay(period).max(Duration::from_micros(50));
                next_sample += step;
                // A host more than two periods behind does not catch up in a burst (the
                // samples would all read nearly the same time); the periods it skips are
                // counted: a simulator running too fast for its CPU.
                let now_wall = tokio::time::Instant::now();
                let slack = (step * 2).max(Duration::from_millis(20));
                if next_sample + slack < now_wall {
                    let behind = now_wall - next_sample;
                    stats.skipped_samples += (behind.as_secs_f64() / step.as_secs_f64()) as u64;
                    next_sample = now_wall;
                }
            }
        }
    }
}

/// What one sample period produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepOutcome {
    /// Messages to spool and publish.
    pub messages: Vec<Message>,
    /// Set when the device resets or shuts down in this period.
    pub exit: Option<HostEvent>,
    /// The offline state to publish before an orderly shutdown.
    pub goodbye: Option<Message>,
}

/// One sample period without the network: the host's events, the customer's offer
/// answers, then the sample. Shared by the live loop and the simulator's offline mode.
pub fn step(
    agent: &mut Agent,
    host: &mut dyn Host,
    now: Timestamp,
    connected: bool,
) -> StepOutcome {
    let mut out = StepOutcome::default();
    for ev in host.advance(now) {
        match ev {
            HostEvent::Crash { signature, process } => {
                out.messages
                    .extend(agent.record_crash(now, &signature, process.as_deref()));
            }
            HostEvent::StorageError { code } => {
                out.messages
                    .extend(agent.record_storage_error(now, &code, None));
            }
            HostEvent::Reset { fatal } => {
                if let Some(reason) = &fatal {
                    agent.record_fatal(now, reason.clone());
                }
                out.exit = Some(HostEvent::Reset { fatal });
                return out;
            }
            HostEvent::Shutdown { reason } => {
                out.goodbye = Some(agent.shutdown(now, reason.clone()));
                out.exit = Some(HostEvent::Shutdown { reason });
                return out;
            }
        }
    }
    for (id, accepted) in host.offer_answers() {
        out.messages.extend(agent.answer_offer(now, &id, accepted));
    }
    out.messages
        .extend(agent.tick(now, host.platform(), connected));
    out
}

async fn poll(conn: &mut Option<Conn>) -> Result<Event, rumqttc::ConnectionError> {
    match conn {
        Some(c) => match c.events.recv().await {
            Some(r) => r,
            None => Err(rumqttc::ConnectionError::RequestsDone),
        },
        None => std::future::pending().await,
    }
}

fn connect(
    agent: &mut Agent,
    config: &SessionConfig,
    clock: &Arc<dyn Clock>,
    limits: &Limits,
) -> Conn {
    let device = agent.device_id().clone();
    let mut opts = MqttOptions::new(
        device.as_str(),
        &config.endpoint.url.host,
        config.endpoint.url.port,
    );
    opts.set_keep_alive(config.keep_alive)
        .set_clean_session(false)
        .set_max_packet_size(
            limits.max_payload_bytes + 1024,
            limits.max_payload_bytes + 1024,
        )
        .set_inflight(config.max_inflight as u16 + 2)
        .set_request_channel_capacity(config.max_inflight + 8);
    let will = agent.will(clock.now());
    let will_topic = will.topic(&config.tenant).to_string();
    let will_payload = will
        .encode(limits)
        .expect("the agent's own state message is valid");
    opts.set_last_will(LastWill::new(
        will_topic,
        will_payload,
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(c) = &config.endpoint.credentials {
        opts.set_credentials(&c.username, &c.password);
    }
    if config.endpoint.url.tls {
        // rustls needs one process-wide crypto provider; the workspace builds ring.
        // Installing it twice is harmless (the second call reports it is set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = config.endpoint.ca_pem.clone().unwrap_or_default();
        opts.set_transport(rumqttc::Transport::tls(ca, None, None));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, config.max_inflight + 8);
    let (tx, events) = mpsc::unbounded_channel();
    let poller = tokio::spawn(async move {
        loop {
            let r = eventloop.poll().await;
            let failed = r.is_err();
            if tx.send(r).is_err() || failed {
                return;
            }
        }
    });
    Conn {
        device: device.as_str().to_owned(),
        client,
        events,
        poller,
        up: false,
        unassigned: VecDeque::new(),
        inflight: HashMap::new(),
        cursor: None,
        live_from: Seq(0),
    }
}

/// Hands pending spool entries to rumqttc while the in-flight window has room.
fn pump(c: &mut Conn, spool: &Spool, tenant: &TenantId, limits: &Limits, max_inflight: usize) {
    while c.unassigned.len() + c.inflight.len() < max_inflight {
        let Some(p) = spool.next_after(c.cursor) else {
            break;
        };
        let previous = c.cursor;
        c.cursor = Some(p.seq);
        let topic = format!(
            "{}/{}/{}/{}",
            protocol::topic::ROOT,
            tenant,
            c.device,
            p.channel.as_str()
        );
        let mut payload = p.payload;
        if p.seq < c.live_from {
            payload = historical(&topic, &payload, limits).unwrap_or(payload);
        }
        match c
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
        {
            Ok(()) => c.unassigned.push_back(Some(p.seq)),
            Err(e) => {
                // The channel is full after all: resend from here next time round.
                tracing::debug!(error = %e, "publish deferred");
                c.cursor = previous;
                break;
            }
        }
    }
}

/// Re-encodes a spooled payload with `historical` set; `None` if it does not decode.
pub fn historical(topic: &str, payload: &[u8], limits: &Limits) -> Option<Vec<u8>> {
    let mut message = protocol::decode(topic, payload, limits).ok()?.message;
    message.set_historical();
    message.encode(limits).ok()
}

/// Publishes a message that is not spooled (birth): it belongs to this connection only.
fn publish(c: &mut Conn, message: &Message, tenant: &TenantId, limits: &Limits, seq: Option<Seq>) {
    let Ok(payload) = message.encode(limits) else {
        return;
    };
    let topic = message.topic(tenant).to_string();
    let retain = message.channel().retained();
    if c.client
        .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        .is_ok()
    {
        c.unassigned.push_back(seq);
    }
}

/// Publishes the offline state and disconnects, giving the broker a moment to take it.
async fn goodbye(c: &mut Conn, bye: &Message, tenant: &TenantId, limits: &Limits) {
    publish(c, bye, tenant, limits, None);
    let _ = c.client.try_disconnect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(ev))) = tokio::time::timeout_at(deadline, c.events.recv()).await {
        if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
}

/// Encodes and spools the agent's messages; tells the agent what the budget forced out.
pub fn spool_all(
    agent: &mut Agent,
    spool: &mut Spool,
    messages: &[Message],
    limits: &Limits,
    stats: &mut SessionStats,
) -> Result<(), SessionError> {
    for m in messages {
        let Some(seq) = m.seq() else { continue };
        let payload = match m.encode(limits) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "the agent produced an invalid message; not sent");
                continue;
            }
        };
        let dropped = spool.push(seq, m.channel(), &payload)?;
        if let Some(record) = stats.spooled.as_mut() {
            record.push(seq);
        }
        if dropped > 0 {
            stats.dropped += u64::from(dropped);
            agent.note_spool_dropped(dropped);
        }
    }
    Ok(())
}
