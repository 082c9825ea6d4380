//! Stage 3, plan: what a batch changes, decided without any I/O.
//!
//! Planning is pure and comes in two steps, because what a decision needs from the
//! store is known only once a device has been scored, and reading it for every scored
//! device would cost three reads per device and batch for the great majority whose risk
//! is far from any action:
//!
//! 1. [`observe`] takes the fresh messages (decoded, deduplicated, in device order) and
//!    a [`Snapshot`] of their devices, and plans the rows to write, the sequence
//!    accounting, liveness changes, answers to commands and the ticket moves they cause,
//!    the feature state (in the in-memory cache), one score per device, and the
//!    [`Candidate`]s the policy may act on.
//! 2. [`decide`] takes those candidates with their [`DeviceContext`] (registration, open
//!    tickets, contact history) and plans the tickets to open with their offer command
//!    and webhook announcement, or records why the policy held back.
//!
//! [`super::apply`] then writes the [`BatchPlan`] in one transaction.

use std::collections::HashMap;

use models::artifact::ModelArtifact;
use models::history::{snapshot_version, DeviceHistory};
use protocol::command::{AckStatus, OfferKind, WithdrawReason};
use protocol::state::State;
use protocol::{Message, Timestamp};

use super::decode::{Accepted, Rejection};
use super::epochs::DeviceEpochs;
use super::{OpenedTicket, PipelineSettings};
use crate::ops::events::{CommandAnswered, DeviceScored, MessageAccepted};
use crate::policy::{
    self, offer, ContactHistory, Decision, DeviceTerms, Hold, PolicyConfig, PolicyInput, Problem,
};
use crate::score::{decode_stored, rebuild_since, FeatureCache, Scored};
use crate::store::cohorts::{Boot, FirmwareUsage};
use crate::store::dead_letters::DeadLetter;
use crate::store::devices::{
    Arrivals, DeviceRow, Identity, Liveness, NewEpoch, ScoreRow, ShadowScore,
};
use crate::store::features::FeatureState;
use crate::store::messages::{NewMessage, StoredMessage};
use crate::store::outbox::{AnsweredCommand, NewCommand};
use crate::store::tickets::{NewTicket, OpenTicket, TicketMove};
use crate::store::Registration;
use crate::tickets::{ticket_ref, Evidence, EvidenceFeature, TicketState, Tier};

/// What the store holds about a batch's devices before the batch.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The `devices` rows; a device never seen is absent.
    pub devices: HashMap<String, DeviceRow>,
    /// The epochs the store knows, of devices with a message of another epoch than
    /// their current one.
    pub known_epochs: HashMap<String, Vec<u32>>,
    /// Stored feature states that can take the place of a cached one that is not in
    /// step with the store (see [`usable_state`]), with the messages since.
    pub states: HashMap<String, StoredState>,
    /// Stored messages of devices whose cached feature state is not in step with the
    /// store and that have no usable stored state, from [`rebuild_since`] the batch's
    /// first message on.
    pub histories: HashMap<String, Vec<StoredMessage>>,
    /// The commands the batch's answers refer to, by (device, command id).
    pub commands: HashMap<(String, String), AnsweredCommand>,
}

/// A device's stored feature state and the messages that arrived after it was written.
#[derive(Debug, Clone)]
pub struct StoredState {
    /// The history as written.
    pub history: DeviceHistory,
    /// The device's message count it reflects.
    pub count: u64,
    /// The messages since, in arrival order.
    pub since: Vec<StoredMessage>,
}

/// A device's feature state is written to the store when its message count crosses a
/// multiple of this (and on its first batch, and after a rebuild): a process picking
/// the device up replays fewer messages than this, and most batches write no state.
pub const STATE_EVERY: u64 = 32;

/// What a decision about one device needs from the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceContext {
    /// Owner and purchase terms.
    pub registration: Registration,
    /// Its open tickets.
    pub open: Vec<OpenTicket>,
    /// Recent contacts about the candidate's problem.
    pub contacts: ContactHistory,
    /// The device's newest stored telemetry payloads (JSON text), oldest first.
    pub recent: Vec<StoredMessage>,
}

/// A scored device the policy may act on, waiting for its [`DeviceContext`].
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The device.
    pub device: String,
    /// Its tenant.
    pub tenant: String,
    /// The score and what it was computed from.
    pub scored: Scored,
    /// The problem the score points at.
    pub problem: Problem,
    /// The tier a ticket would have before the device's terms are known.
    pub tier: Tier,
    /// The schema of the device's latest message: its commands are written in it.
    pub schema: u32,
}

/// A device's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<'a> {
    /// The device.
    pub device: &'a str,
    /// The command.
    pub command_id: &'a str,
    /// The answer.
    pub status: AckStatus,
}

/// A ticket to open, with what goes out with it.
#[derive(Debug, Clone)]
pub struct Opening {
    /// The ticket.
    pub ticket: NewTicket,
    /// The offer command (its ticket id is set once the ticket has one).
    pub command: NewCommand,
    /// The withdrawal of the offer this one supersedes, queued before it (schema-2
    /// devices only); the offer waits for its answer.
    pub withdraw: Option<NewCommand>,
    /// The evidence again, for the webhook announcement, when webhooks are configured.
    pub announced: Option<Evidence>,
    /// The summary for progress output (id set likewise).
    pub summary: OpenedTicket,
}

/// What to report once the batch has committed.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One per accepted message.
    pub accepted: Vec<MessageAccepted>,
    /// Redeliveries dropped.
    pub duplicates: u64,
    /// Devices that restarted their seq count under a new epoch: device, the new
    /// epoch, restarts.
    pub seq_resets: Vec<(String, u32, u64)>,
    /// One per score.
    pub scored: Vec<DeviceScored>,
    /// One per answer.
    pub answers: Vec<CommandAnswered>,
    /// Alarms held back: device and reason.
    pub held: Vec<(String, Hold)>,
    /// Devices whose feature state came from its stored snapshot.
    pub restored: u64,
    /// Devices whose feature state was rebuilt from stored messages.
    pub rebuilt: u64,
    /// Stored messages replayed into feature states: by rebuilds, and by restores (the
    /// messages that arrived after the stored state).
    pub replayed: u64,
    /// Offers that could not be built, with why.
    pub unofferable: Vec<offer::OfferError>,
}

/// Everything one batch changes.
#[derive(Debug, Clone, Default)]
pub struct BatchPlan<'a> {
    /// The batch's receipt time (ingest clock): every row it writes is dated so.
    pub now: Timestamp,
    /// Rejected messages to keep.
    pub dead_letters: Vec<DeadLetter<'a>>,
    /// Fresh messages to store.
    pub messages: Vec<NewMessage<'a>>,
    /// Per device: its new messages, counted.
    pub arrivals: Vec<Arrivals<'a>>,
    /// Epochs seen for the first time.
    pub epochs: Vec<NewEpoch<'a>>,
    /// Per device (as `arrivals`): the message count the store must hold afterwards.
    pub counts_after: Vec<u64>,
    /// Liveness as the batch leaves it, per device whose state changed.
    pub liveness: Vec<Liveness<'a>>,
    /// Answers to commands.
    pub answers: Vec<Answer<'a>>,
    /// Ticket moves: answers, and tickets a stronger one supersedes.
    pub moves: Vec<TicketMove>,
    /// Scores that moved enough to be written.
    pub scores: Vec<ScoreRow>,
    /// Each device's feature state as the batch leaves it.
    pub feature_states: Vec<(&'a str, FeatureState)>,
    /// Births' boots and the firmware each ran.
    pub boots: Vec<Boot<'a>>,
    /// Heartbeats summed per device, boot and day, for the firmware the boot ran.
    pub usage: Vec<FirmwareUsage<'a>>,
    /// Devices the policy may act on (drained by [`decide`]).
    pub candidates: Vec<Candidate>,
    /// Tickets to open.
    pub openings: Vec<Opening>,
    /// What to report after the commit.
    pub report: Report,
}

/// Plans what the fresh messages change (step 1). `fresh` is in device order with each
/// device's messages in arrival order, as [`super::dedup`] leaves it; the cache is
/// updated in place (and must be forgotten for these devices if the plan is not
/// committed).
#[allow(clippy::too_many_arguments)]
pub fn observe<'a>(
    now: Timestamp,
    rejected: &[Rejection<'a>],
    fresh: &'a [Accepted<'a>],
    duplicates: u64,
    snapshot: &Snapshot,
    epochs: &HashMap<String, DeviceEpochs>,
    cache: &mut FeatureCache,
    model: &ModelArtifact,
    challenger: Option<&ModelArtifact>,
    policy: &PolicyConfig,
    settings: &PipelineSettings,
) -> BatchPlan<'a> {
    let mut plan = BatchPlan {
        now,
        dead_letters: rejected.iter().map(|r| dead_letter(now, r)).collect(),
        ..BatchPlan::default()
    };
    plan.report.duplicates = duplicates;
    // Ticket states as this batch's answers leave them.
    let mut tickets: HashMap<i64, TicketState> = HashMap::new();
    for group in fresh.chunk_by(|a, b| a.device() == b.device()) {
        let device = group[0].device();
        let row = snapshot.devices.get(device).copied().unwrap_or_default();
        let ep = epochs
            .get(device)
            .cloned()
            .unwrap_or_else(|| super::epochs::judge(Some(&row), &[], group));
        plan.arrive(group, &row, &ep, settings.export_telemetry);
        plan.liveness.extend(liveness(group, row.state_ms, now));
        plan.boots.extend(boots(group));
        plan.usage.extend(usage(group));
        plan.answer(group, &snapshot.commands, &mut tickets);
        let stored = snapshot
            .histories
            .get(device)
            .map_or(&[][..], Vec::as_slice);
        plan.follow(cache, group, &row, snapshot.states.get(device), stored);
        if group.iter().any(Accepted::is_telemetry) {
            if let Some(mut scored) = cache.score(device, model, settings.explain_top) {
                let schema = group.last().map_or(1, |a| a.schema);
                scored.shadow = challenger.map(|c| {
                    let score = c.score(&scored.features);
                    ShadowScore {
                        risk: score.probability,
                        alarm: score.alarm,
                        version: c.version.clone(),
                    }
                });
                plan.score(cache, &group[0], scored, model, policy, schema);
            }
        }
    }
    plan
}

impl<'a> BatchPlan<'a> {
    /// One device's fresh messages: rows, accounting (within the epoch `ep` leaves
    /// current), and their report.
    fn arrive(
        &mut self,
        group: &'a [Accepted<'a>],
        row: &DeviceRow,
        ep: &DeviceEpochs,
        export: bool,
    ) {
        let (device, tenant) = (group[0].device(), group[0].topic.tenant.as_str());
        let n = group.len() as u64;
        let current = || group.iter().filter(|a| a.epoch == ep.current);
        let kept = |seq| {
            if ep.was_current(ep.current) {
                Some(seq)
            } else {
                None
            }
        };
        self.arrivals.push(Arrivals {
            device_id: device,
            tenant,
            n,
            epoch: ep.current,
            other_epochs: n - current().count() as u64,
            resets: ep.resets,
            min_seq: current()
                .map(|a| a.seq)
                .chain(kept(row.stats.min_seq))
                .min()
                .unwrap_or(0),
            max_seq: current()
                .map(|a| a.seq)
                .chain(kept(row.stats.max_seq))
                .max()
                .unwrap_or(0),
            first_ts_ms: group.iter().map(|a| a.ts_ms).min().unwrap_or(0),
            last_ts_ms: group.iter().map(|a| a.ts_ms).max().unwrap_or(0),
        });
        self.counts_after.push(row.stats.count + n);
        self.epochs
            .extend(ep.new.iter().map(|&(epoch, first_seq)| NewEpoch {
                device_id: device,
                epoch,
                first_seq,
            }));
        if ep.resets > 0 {
            self.report
                .seq_resets
                .push((device.to_owned(), ep.current, ep.resets));
        }
        // Order is judged within an epoch, from the stored high-water mark of the
        // current one.
        let mut newest: Vec<(u32, u64)> = ep
            .before
            .map(|e| (e, row.stats.max_seq))
            .into_iter()
            .collect();
        for (i, a) in group.iter().enumerate() {
            self.messages.push(NewMessage {
                arrival: row.stats.count + i as u64 + 1,
                device_id: device,
                seq: a.seq,
                epoch: a.epoch,
                tenant,
                channel: a.topic.channel.as_str(),
                ts_ms: a.ts_ms,
                received_ms: self.now.0,
                payload: &a.payload,
                export_pending: export && a.is_telemetry(),
            });
            self.report.accepted.push(MessageAccepted {
                channel: a.topic.channel,
                lag_s: self.now.0.saturating_sub(a.ts_ms) as f64 / 1000.0,
                out_of_order: newest.iter().any(|&(e, s)| e == a.epoch && a.seq < s),
            });
            match newest.iter_mut().find(|(e, _)| *e == a.epoch) {
                Some((_, s)) => *s = (*s).max(a.seq),
                None => newest.push((a.epoch, a.seq)),
            }
        }
    }

    /// One device's answers to commands, and the ticket moves they make.
    fn answer(
        &mut self,
        group: &'a [Accepted<'a>],
        commands: &HashMap<(String, String), AnsweredCommand>,
        tickets: &mut HashMap<i64, TicketState>,
    ) {
        for a in group {
            let Message::Ack(env) = &a.message else {
                continue;
            };
            let (status, command_id) = (env.body.status, env.body.command_id.as_str());
            self.report.answers.push(CommandAnswered { status });
            self.answers.push(Answer {
                device: a.device(),
                command_id,
                status,
            });
            let key = (a.device().to_owned(), command_id.to_owned());
            let Some((id, stored, kind)) = commands.get(&key).and_then(|c| c.ticket) else {
                continue;
            };
            let from = *tickets.entry(id).or_insert(stored);
            for (to, actor, note) in answer_moves(from, status, kind) {
                let from = tickets.insert(id, to).unwrap_or(from);
                self.moves.push(TicketMove {
                    ticket_id: id,
                    from,
                    to,
                    actor,
                    note,
                    at_ms: self.now.0,
                });
            }
        }
    }

    /// A device's score: written when it moved, and a candidate when the policy may act.
    fn score(
        &mut self,
        cache: &mut FeatureCache,
        first: &Accepted<'_>,
        scored: Scored,
        model: &ModelArtifact,
        policy: &PolicyConfig,
        schema: u32,
    ) {
        let device = first.device();
        let score = scored.explanation.score;
        self.report.scored.push(DeviceScored {
            risk: score.probability,
        });
        if cache.score_moved(device, &score, scored.shadow.as_ref()) {
            self.scores.push(ScoreRow {
                device_id: device.to_owned(),
                risk: score.probability,
                alarm: score.alarm,
                scored_ms: scored.at.0,
                model_version: model.version.clone(),
                explanation: serde_json::to_string(&evidence_features(&scored))
                    .expect("numbers and names serialise"),
                shadow: scored.shadow.clone(),
            });
        }
        // Most scores are far from any action: settle those without the device's terms.
        let unknown = DeviceTerms::default();
        let first_look = PolicyInput {
            explanation: &scored.explanation,
            threshold: model.threshold,
            features: &scored.features,
            terms: &unknown,
            contacts: ContactHistory::default(),
            now_ms: self.now.0,
            draw: policy::sample::draw(device, self.now.0),
        };
        if let Decision::Open(p) = policy::decide(&first_look, policy) {
            self.candidates.push(Candidate {
                device: device.to_owned(),
                tenant: first.topic.tenant.as_str().to_owned(),
                problem: p.problem,
                tier: p.tier,
                scored,
                schema,
            });
        }
    }
}

/// A device's liveness as its messages leave it. State changes are dated on receipt
/// (`now`) and take effect in the order they arrive: a Last Will is composed at connect
/// time, so its `ts_ms` and `seq` are older than the birth it follows (protocol §7), and
/// the device's clock may be wrong. A state in force that was received later than `now`
/// (the ingest clock stepped back) is kept. The identity is the newest birth's.
fn liveness<'a>(
    group: &'a [Accepted<'a>],
    state_ms: Option<u64>,
    now: Timestamp,
) -> Option<Liveness<'a>> {
    if state_ms.is_some_and(|s| s > now.0) {
        return None;
    }
    let mut out: Option<Liveness<'a>> = None;
    for a in group {
        let Message::State(env) = &a.message else {
            continue;
        };
        let (online, birth) = match &env.body {
            State::Online(b) => (true, Some(b)),
            State::Offline(_) => (false, None),
        };
        let identity = birth
            .map(|b| Identity {
                model: b.model.as_str(),
                device_class: b.device_class.as_str(),
                hw_revision: b.hw_revision.as_str(),
                batch: b.batch.as_str(),
                firmware: b.firmware.as_str(),
            })
            .or_else(|| out.take().and_then(|l| l.identity));
        out = Some(Liveness {
            device_id: a.device(),
            online,
            ts_ms: now.0,
            identity,
        });
    }
    out
}

/// The boots one device's births announce, with their firmware.
fn boots<'a>(group: &'a [Accepted<'a>]) -> Vec<Boot<'a>> {
    group
        .iter()
        .filter_map(|a| match &a.message {
            Message::State(env) => match &env.body {
                State::Online(b) => Some(Boot {
                    device_id: a.device(),
                    boot_id: env.boot_id.as_str(),
                    firmware: b.firmware.as_str(),
                    ts_ms: a.ts_ms,
                }),
                State::Offline(_) => None,
            },
            _ => None,
        })
        .collect()
}

/// One device's heartbeats summed per boot and day (device time): running time,
/// crash-free time, unexpected restarts and crashes, which the store adds to the day's
/// row for the firmware the boot ran.
fn usage<'a>(group: &'a [Accepted<'a>]) -> Vec<FirmwareUsage<'a>> {
    let mut out: Vec<FirmwareUsage<'a>> = Vec::new();
    for a in group {
        let Message::Heartbeat(env) = &a.message else {
            continue;
        };
        let hb = &env.body;
        let boot_id = env.boot_id.as_str();
        let day_ms = a.ts_ms - a.ts_ms % 86_400_000;
        let restarts: u64 = hb
            .reboots
            .iter()
            .filter(|(reason, _)| reason.is_unexpected())
            .map(|(_, n)| u64::from(*n))
            .sum();
        let i = match out
            .iter()
            .position(|u| u.day_ms == day_ms && u.boot_id == boot_id)
        {
            Some(i) => i,
            None => {
                out.push(FirmwareUsage {
                    device_id: a.device(),
                    boot_id,
                    day_ms,
                    ..FirmwareUsage::default()
                });
                out.len() - 1
            }
        };
        let u = &mut out[i];
        u.operational_s += u64::from(hb.operational_s);
        u.crash_free_s += u64::from(hb.crash_free_s.min(hb.operational_s));
        u.unexpected_restarts += restarts;
        u.crashes += u64::from(hb.crashes);
    }
    out
}

/// A stored feature state that can stand in for the cache: written by this layout and
/// feature schema, after no more than the `count` messages the store holds (the rest
/// are replayed), and readable.
pub fn usable_state(stored: &FeatureState, count: u64) -> Option<DeviceHistory> {
    (stored.version == snapshot_version() && stored.msg_count <= count)
        .then(|| DeviceHistory::from_snapshot(&stored.state).ok())
        .flatten()
}

impl<'a> BatchPlan<'a> {
    /// Brings a device's cached feature state up to date with its fresh messages: added
    /// to a cache in step with the store, or to the stored state, or rebuilt from the
    /// `stored` history and the batch; the state it ends in is written back.
    fn follow(
        &mut self,
        cache: &mut FeatureCache,
        group: &'a [Accepted<'a>],
        row: &DeviceRow,
        state: Option<&StoredState>,
        stored: &[StoredMessage],
    ) {
        let device = group[0].device();
        let count = row.stats.count;
        let mut write =
            count == 0 || (count + group.len() as u64) / STATE_EVERY > count / STATE_EVERY;
        if !cache.is_current(device, count) {
            if let Some(s) = state {
                let mut history = s.history.clone();
                history.set_purchased_at(row.purchased_ms.map(Timestamp));
                cache.restore(device, history, s.count);
                let limits = protocol::Limits::default();
                for m in &s.since {
                    match decode_stored(&m.channel, &m.payload, &limits) {
                        Some(message) => cache.observe(device, &message),
                        None => cache.count_only(device),
                    }
                }
                self.report.restored += 1;
                self.report.replayed += s.since.len() as u64;
            }
        }
        if cache.is_current(device, count) {
            for a in group {
                cache.observe(device, &a.message);
            }
        } else {
            let mut replay: Vec<(u64, u64, &str, &str)> = stored
                .iter()
                .map(|m| (m.ts_ms, m.seq, m.channel.as_str(), m.payload.as_str()))
                .chain(
                    group
                        .iter()
                        .map(|a| (a.ts_ms, a.seq, a.topic.channel.as_str(), &*a.payload)),
                )
                .collect();
            replay.sort_by_key(|&(ts, seq, _, _)| (ts, seq));
            cache.rebuild(
                device,
                row.purchased_ms.map(Timestamp),
                replay.iter().map(|&(_, _, c, p)| (c, p)),
                count + group.len() as u64,
            );
            self.report.rebuilt += 1;
            self.report.replayed += stored.len() as u64;
            write = true;
        }
        if !write {
            return;
        }
        if let Some((msg_count, state)) = cache.snapshot(device) {
            self.feature_states.push((
                device,
                FeatureState {
                    version: snapshot_version(),
                    msg_count,
                    state,
                },
            ));
        }
    }
}

/// Bytes of a rejected payload kept in its dead letter: all of any payload within the
/// protocol's limit, the start of a larger one.
pub const DEAD_LETTER_EXCERPT: usize = 16 * 1024;

/// A rejection as it is kept: a payload over [`DEAD_LETTER_EXCERPT`] is cut to it, and the
/// detail says so. The detail quotes the payload's values, so its control characters are
/// escaped: PostgreSQL's text refuses a NUL, and a log line should not carry one. (A
/// topic cannot hold one: MQTT forbids it.)
pub fn dead_letter<'a>(now: Timestamp, r: &Rejection<'a>) -> DeadLetter<'a> {
    let payload: &'a [u8] = &r.delivery.payload;
    let mut detail = String::with_capacity(r.detail.len());
    for c in r.detail.chars() {
        if c.is_control() {
            detail.extend(c.escape_unicode());
        } else {
            detail.push(c);
        }
    }
    let payload = if payload.len() > DEAD_LETTER_EXCERPT {
        detail = format!(
            "{detail}; the first {DEAD_LETTER_EXCERPT} of {} bytes are kept",
            payload.len()
        );
        &payload[..DEAD_LETTER_EXCERPT]
    } else {
        payload
    };
    DeadLetter {
        received_ms: now.0,
        topic: &r.delivery.topic,
        payload,
        reason: r.reason,
        detail,
    }
}

/// The moves a device's answer makes, from the state its ticket is in: (to, actor, note).
/// A repeated or late answer finds the ticket further along and moves nothing.
pub fn answer_moves(
    mut state: TicketState,
    status: AckStatus,
    offer: OfferKind,
) -> Vec<(TicketState, &'static str, Option<&'static str>)> {
    let path: &[TicketState] = match status {
        AckStatus::Received => &[TicketState::Offered],
        AckStatus::Accepted => &[TicketState::Offered, TicketState::Accepted],
        AckStatus::Declined => &[TicketState::Offered, TicketState::Declined],
        AckStatus::Rejected | AckStatus::Failed => &[TicketState::Cancelled],
        AckStatus::Done => &[],
    };
    let note = matches!(status, AckStatus::Rejected | AckStatus::Failed)
        .then_some("the device refused the offer command");
    let mut out = Vec::new();
    for &next in path {
        if state.can_move_to(next) {
            out.push((next, "device", note));
            state = next;
        }
    }
    // A self-service tip is done once the customer takes it.
    if state == TicketState::Accepted && offer == OfferKind::SelfServiceTip {
        out.push((TicketState::Resolved, "customer", Some("tip applied")));
    }
    out
}

/// Decides about the candidates (step 2): tickets to open, or why not. `contexts` holds
/// each candidate's [`DeviceContext`] as the store had it before the batch; this
/// batch's own ticket moves are taken into account on top.
pub fn decide(
    plan: &mut BatchPlan<'_>,
    contexts: &HashMap<String, DeviceContext>,
    model: &ModelArtifact,
    policy: &PolicyConfig,
    settings: &PipelineSettings,
    now: Timestamp,
) {
    for c in std::mem::take(&mut plan.candidates) {
        let mut ctx = contexts.get(&c.device).cloned().unwrap_or_default();
        for m in &plan.moves {
            if let Some(t) = ctx.open.iter_mut().find(|t| t.id == m.ticket_id) {
                t.state = m.to;
                if !m.to.is_open() && t.problem == c.problem {
                    let last = ctx.contacts.last_closed_ms.get_or_insert(m.at_ms);
                    *last = (*last).max(m.at_ms);
                }
            }
        }
        ctx.open.retain(|t| t.state.is_open());
        let existing = ctx.open.iter().find(|t| t.problem == c.problem).cloned();
        // Already open for this problem: nothing new unless it must escalate.
        if existing.as_ref().is_some_and(|t| t.tier >= c.tier) {
            continue;
        }
        let terms = terms_of(&ctx.registration, now);
        let input = PolicyInput {
            explanation: &c.scored.explanation,
            threshold: model.threshold,
            features: &c.scored.features,
            terms: &terms,
            contacts: ctx.contacts,
            now_ms: now.0,
            draw: policy::sample::draw(&c.device, now.0),
        };
        let p = match policy::decide(&input, policy) {
            Decision::Open(p) => p,
            Decision::Hold(h) => {
                plan.report.held.push((c.device.clone(), h));
                continue;
            }
        };
        if let Some(t) = &existing {
            // What the customer has accepted stands: a service team works it, and the
            // stronger signal is theirs to see in the device's scores.
            if t.tier >= p.tier || !t.state.is_unanswered() {
                continue;
            }
        }
        let excerpt = excerpt(
            &ctx.recent,
            &plan.messages,
            &c.device,
            settings.excerpt_messages,
        );
        let superseded = existing.as_ref().map(|t| t.ticket_ref.as_str());
        let opening = match opening(
            &c,
            &p,
            &ctx.registration,
            &excerpt,
            superseded,
            model,
            settings,
            now,
        ) {
            Ok(o) => o,
            Err(e) => {
                plan.report.unofferable.push(e);
                plan.report.held.push((c.device.clone(), Hold::Unofferable));
                continue;
            }
        };
        if let Some(t) = existing {
            // An unanswered weaker offer is not enough any more: withdrawn for this one.
            plan.moves.push(TicketMove {
                ticket_id: t.id,
                from: t.state,
                to: TicketState::Cancelled,
                actor: "policy",
                note: Some("superseded by a higher-tier ticket"),
                at_ms: now.0,
            });
        }
        plan.openings.push(opening);
    }
}

/// The newest `n` telemetry payloads behind a score, oldest first: the device's stored
/// ones and this batch's, in device time.
fn excerpt<'m>(
    stored: &'m [StoredMessage],
    batch: &'m [NewMessage<'_>],
    device: &str,
    n: usize,
) -> Vec<&'m str> {
    let telemetry = |channel: &str| channel == "heartbeat" || channel == "event";
    let mut all: Vec<(u64, u64, &str)> = stored
        .iter()
        .filter(|m| telemetry(&m.channel))
        .map(|m| (m.ts_ms, m.seq, m.payload.as_str()))
        .chain(
            batch
                .iter()
                .filter(|m| m.device_id == device && telemetry(m.channel))
                .map(|m| (m.ts_ms, m.seq, m.payload)),
        )
        .collect();
    all.sort_by_key(|&(ts, seq, _)| (ts, seq));
    all.dedup_by_key(|&mut (_, seq, _)| seq);
    let skip = all.len().saturating_sub(n);
    all.into_iter().skip(skip).map(|(_, _, p)| p).collect()
}

#[allow(clippy::too_many_arguments)]
fn opening(
    c: &Candidate,
    p: &policy::Plan,
    reg: &Registration,
    excerpt: &[&str],
    superseded: Option<&str>,
    model: &ModelArtifact,
    settings: &PipelineSettings,
    now: Timestamp,
) -> Result<Opening, offer::OfferError> {
    let top = evidence_features(&c.scored);
    let evidence = Evidence {
        risk: c.scored.explanation.score.probability,
        threshold: model.threshold,
        model_version: model.version.clone(),
        scored_at_ms: c.scored.at.0,
        top_features: top.clone(),
        safety: p.safety.clone(),
        telemetry: excerpt
            .iter()
            .filter_map(|m| serde_json::from_str(m).ok())
            .collect(),
        reasoning: p.reasoning.clone(),
    };
    let why = top
        .iter()
        .filter(|f| f.contribution > 0.0)
        .take(3)
        .map(|f| format!("{} = {:.2} {}", f.feature, f.value, f.unit))
        .chain(p.safety.iter().cloned())
        .collect();
    let features = serde_json::to_string(&crate::store::tickets::ScoredFeatures {
        schema: models::schema::schema_fingerprint(),
        values: c.scored.features.0.to_vec(),
        sample_weight: p.sample_weight,
    })
    .expect("numbers serialise");
    let target = Target {
        device: &c.device,
        tenant: &c.tenant,
        schema: c.schema,
        registration: reg,
    };
    opening_rows(
        &target,
        p,
        evidence,
        Some(features),
        why,
        superseded,
        settings,
        now,
    )
}

/// The device a ticket opens for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The device.
    pub device: &'a str,
    /// Its tenant.
    pub tenant: &'a str,
    /// The schema its commands are written in.
    pub schema: u32,
    /// Its owner and terms.
    pub registration: &'a Registration,
}

/// The rows a ticket the policy planned opens with: the ticket, its offer command (and
/// the withdrawal of the offer it supersedes), its announcement and its summary. Shared
/// by scored devices and campaigns, so both reach a customer the same way.
#[allow(clippy::too_many_arguments)]
pub fn opening_rows(
    t: &Target<'_>,
    p: &policy::Plan,
    evidence: Evidence,
    features: Option<String>,
    why: Vec<String>,
    superseded: Option<&str>,
    settings: &PipelineSettings,
    now: Timestamp,
) -> Result<Opening, offer::OfferError> {
    let reference = ticket_ref(t.device, p.problem, now);
    let command = offer::offer_command(
        t.device,
        t.tenant,
        &reference,
        p,
        now,
        settings.offer_valid_hours,
        t.schema,
    )?;
    // A device that reads schema 2 is told the old offer is gone before it gets the
    // new one; a schema-1 device cannot be (docs/protocol.md §12).
    let withdraw = match superseded {
        Some(old) if t.schema >= protocol::envelope::EPOCH_SCHEMA => {
            let w = offer::withdraw_command(
                t.device,
                t.tenant,
                old,
                WithdrawReason::Superseded,
                now,
                settings.offer_valid_hours,
            )?;
            Some(NewCommand {
                command_id: w.command_id.as_str().to_owned(),
                ticket_id: None,
                device_id: t.device.to_owned(),
                topic: w.topic,
                payload: w.payload,
                created_ms: now.0,
                expires_ms: Some(w.expires.0),
                after_command: None,
            })
        }
        _ => None,
    };
    Ok(Opening {
        ticket: NewTicket {
            ticket_ref: reference.clone(),
            device_id: t.device.to_owned(),
            tenant: t.tenant.to_owned(),
            customer_id: t.registration.customer_id.clone(),
            problem: p.problem,
            tier: p.tier,
            offer: p.offer,
            quote_minor: p.quote_minor,
            currency: p.currency.clone(),
            opened_ms: now.0,
            due_ms: p.due_ms,
            risk: evidence.risk,
            model_version: evidence.model_version.clone(),
            evidence: serde_json::to_string(&evidence).expect("evidence serialises"),
            features,
        },
        command: NewCommand {
            command_id: command.command_id.as_str().to_owned(),
            ticket_id: None,
            device_id: t.device.to_owned(),
            topic: command.topic,
            payload: command.payload,
            created_ms: now.0,
            expires_ms: Some(command.expires.0),
            after_command: withdraw.as_ref().map(|w| w.command_id.clone()),
        },
        withdraw,
        announced: (!settings.webhooks.is_empty()).then(|| evidence.clone()),
        summary: OpenedTicket {
            id: 0,
            ticket_ref: reference,
            device_id: t.device.to_owned(),
            risk: evidence.risk,
            problem: p.problem,
            offer: p.offer,
            quote_minor: p.quote_minor,
            currency: p.currency.clone(),
            tier: p.tier,
            opened_ms: now.0,
            due_ms: p.due_ms,
            why,
        },
    })
}

/// What the registry's terms mean now.
pub fn terms_of(reg: &Registration, now: Timestamp) -> DeviceTerms {
    DeviceTerms {
        age_days: reg
            .purchased_ms
            .map(|p| now.0.saturating_sub(p) as f64 / 86_400_000.0),
        in_warranty: reg.warranty_until_ms.map(|w| now.0 < w),
        price_minor: reg.price_minor,
        currency: reg.currency.clone(),
    }
}

/// The stored messages a rebuild of `device` needs: from [`rebuild_since`] the first of
/// its messages in the batch.
pub fn rebuild_from(group: &[Accepted<'_>]) -> u64 {
    rebuild_since(Timestamp(group.iter().map(|a| a.ts_ms).min().unwrap_or(0)))
}

fn evidence_features(s: &Scored) -> Vec<EvidenceFeature> {
    s.explanation
        .top
        .iter()
        .map(|c| EvidenceFeature {
            feature: c.feature.to_owned(),
            unit: c.unit.to_owned(),
            value: c.value,
            contribution: c.contribution,
        })
        .collect()
}

#[cfg(test)]
mod tests;
