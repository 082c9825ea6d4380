//! The planning stage without a database: messages in, a plan out.

use std::collections::HashMap;

use models::artifact::ModelArtifact;
use protocol::command::{AckStatus, CommandAck, OfferKind, WithdrawReason};
use protocol::ids::{CommandId, DeviceId, Seq, Timestamp};
use protocol::{examples, Envelope, Limits, Message};

use super::*;
use crate::ingest::decode::{self, Delivery};
use crate::ingest::{dedup, epochs};
use crate::policy::Hold;
use crate::store::devices::SeqStats;
use crate::store::tickets::ScoredFeatures;

/// 2026-11-23T08:00:00Z, the examples' epoch.
const T0: u64 = 1_795_334_400_000;
const MIN: u64 = 60_000;

fn at<B>(mut env: Envelope<B>, device: &str, seq: u64, ts: u64) -> Envelope<B> {
    env.device_id = DeviceId::new(device).unwrap();
    env.seq = Seq(seq);
    env.ts_ms = Timestamp(ts);
    env
}

fn hb(device: &str, seq: u64, ts: u64) -> Message {
    Message::Heartbeat(at(examples::heartbeat(), device, seq, ts))
}

fn birth(device: &str, seq: u64, ts: u64) -> Message {
    Message::State(at(examples::birth(), device, seq, ts))
}

fn death(device: &str, seq: u64, ts: u64) -> Message {
    Message::State(at(examples::death(), device, seq, ts))
}

fn ack(device: &str, seq: u64, command: &str, status: AckStatus) -> Message {
    let body = CommandAck {
        command_id: CommandId::new(command).unwrap(),
        status,
        detail: None,
        diagnostics: vec![],
    };
    let env = Envelope::new(
        DeviceId::new(device).unwrap(),
        (examples::EPOCH, Seq(seq)),
        examples::birth().boot_id,
        Timestamp(T0 + seq * MIN),
        body,
    );
    Message::Ack(env)
}

fn deliveries(messages: &[Message]) -> Vec<Delivery> {
    let tenant = examples::tenant();
    messages
        .iter()
        .map(|m| Delivery {
            topic: m.topic(&tenant).to_string(),
            payload: m.encode(&Limits::default()).unwrap(),
        })
        .collect()
}

/// A model whose every score is an alarm (threshold 0), or none is (threshold 1).
fn model(alarm: bool) -> ModelArtifact {
    let mut m = ModelArtifact::bundled().unwrap();
    m.threshold = if alarm { 0.0 } else { 1.0 };
    m
}

struct Run {
    cache: FeatureCache,
    model: ModelArtifact,
    challenger: Option<ModelArtifact>,
    policy: PolicyConfig,
    settings: PipelineSettings,
}

impl Run {
    fn new(alarm: bool) -> Self {
        // Tips would blur "alarm or not" in these tests.
        let policy = PolicyConfig {
            tip_share_of_threshold: 0.0,
            ..PolicyConfig::default()
        };
        Run {
            cache: FeatureCache::new(100),
            model: model(alarm),
            challenger: None,
            policy,
            settings: PipelineSettings {
                webhooks: vec!["https://crm.example/hook".into()],
                ..PipelineSettings::default()
            },
        }
    }

    /// Decodes, dedups and plans a batch (step 1); the plan borrows `fresh`.
    fn observe<'a>(&mut self, fresh: &'a [Accepted<'a>], snapshot: &Snapshot) -> BatchPlan<'a> {
        observe(
            Timestamp(T0 + 10_000 * MIN),
            &[],
            fresh,
            0,
            snapshot,
            &crate::ingest::epochs::judge_batch(fresh, &snapshot.devices, &snapshot.known_epochs),
            &mut self.cache,
            &self.model,
            self.challenger.as_ref(),
            &self.policy,
            &self.settings,
        )
    }

    fn decide(&self, plan: &mut BatchPlan<'_>, contexts: &HashMap<String, DeviceContext>) {
        decide(
            plan,
            contexts,
            &self.model,
            &self.policy,
            &self.settings,
            Timestamp(T0 + 10_000 * MIN),
        );
    }
}

fn accept(batch: &[Delivery]) -> (Vec<Accepted<'_>>, u64) {
    let d = decode::decode(batch, &Limits::default());
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    dedup::within_batch(d.accepted)
}

#[test]
fn repeats_are_dropped_and_each_device_keeps_its_arrival_order() {
    let batch = deliveries(&[
        hb("dev-b", 1, T0),
        hb("dev-a", 7, T0 + MIN),
        hb("dev-b", 2, T0 + 2 * MIN),
        hb("dev-a", 7, T0 + MIN),
        hb("dev-a", 5, T0 + 3 * MIN),
    ]);
    let (fresh, repeats) = accept(&batch);
    assert_eq!(repeats, 1);
    let order: Vec<(&str, u64)> = fresh.iter().map(|a| (a.device(), a.seq)).collect();
    assert_eq!(
        order,
        [("dev-a", 7), ("dev-a", 5), ("dev-b", 1), ("dev-b", 2)]
    );

    let mut run = Run::new(false);
    let plan = run.observe(&fresh, &Snapshot::default());
    let rows: Vec<(&str, u64)> = plan.messages.iter().map(|m| (m.device_id, m.seq)).collect();
    assert_eq!(rows, order, "rows are written in the same order");
    let arrivals: Vec<(&str, u64, u64, u64)> = plan
        .arrivals
        .iter()
        .map(|a| (a.device_id, a.n, a.min_seq, a.max_seq))
        .collect();
    assert_eq!(arrivals, [("dev-a", 2, 5, 7), ("dev-b", 2, 1, 2)]);
    assert_eq!(plan.counts_after, [2, 2]);
    let late: Vec<bool> = plan
        .report
        .accepted
        .iter()
        .map(|e| e.out_of_order)
        .collect();
    assert_eq!(late, [false, true, false, false], "seq 5 came after seq 7");
}

#[test]
fn what_the_store_holds_is_dropped_too_and_counted() {
    let batch = deliveries(&[hb("dev-a", 1, T0), hb("dev-a", 2, T0 + MIN)]);
    let (fresh, _) = accept(&batch);
    let boot = examples::heartbeat().boot_id.as_str().to_owned();
    let e = examples::EPOCH.0;
    let stored = |boot: &str| HashMap::from([(("dev-a".to_owned(), e, 1), boot.to_owned())]);
    let rows = HashMap::from([(
        "dev-a".to_owned(),
        DeviceRow {
            epoch: e,
            stats: SeqStats {
                count: 1,
                before_epoch: 0,
                min_seq: 1,
                max_seq: 1,
            },
            ..DeviceRow::default()
        },
    )]);
    let epochs = epochs::judge_batch(&fresh, &rows, &HashMap::new());
    let d = dedup::against_store(&fresh, &stored(&boot), &rows, &epochs);
    assert_eq!((d.repeats, d.reused.len()), (1, 0));
    assert_eq!(d.fresh.iter().map(|a| a.seq).collect::<Vec<_>>(), [2]);
    let d = dedup::against_store(&fresh, &HashMap::new(), &rows, &epochs);
    assert_eq!((d.fresh.len(), d.repeats), (2, 0));
    // The same key stored from another boot: not a repeat but a reused seq, rejected.
    let d = dedup::against_store(&fresh, &stored("boot-before-the-reset"), &rows, &epochs);
    assert_eq!((d.fresh.len(), d.repeats, d.reused.len()), (1, 0, 1));
    assert_eq!(d.reused[0].reason, decode::SEQ_REUSED);
    assert!(
        d.reused[0].detail.contains("boot-before-the-reset"),
        "{}",
        d.reused[0].detail
    );
    // Retention pruned dev-a up to seq 1: a redelivery of it is still a repeat.
    let mut pruned = rows.clone();
    pruned.get_mut("dev-a").unwrap().pruned_seq = Some(1);
    let d = dedup::against_store(&fresh, &HashMap::new(), &pruned, &epochs);
    assert_eq!((d.fresh.len(), d.repeats), (1, 1));
    // ...but the watermark is the current epoch's: under a new epoch seq 1 is new.
    let mut reset = pruned.clone();
    reset.get_mut("dev-a").unwrap().epoch = e + 1;
    let epochs = epochs::judge_batch(
        &fresh,
        &reset,
        &HashMap::from([("dev-a".into(), vec![e + 1])]),
    );
    let d = dedup::against_store(&fresh, &HashMap::new(), &reset, &epochs);
    assert_eq!((d.fresh.len(), d.repeats), (2, 0));
}

#[test]
fn out_of_order_counts_against_what_the_store_saw_before() {
    let batch = deliveries(&[
        hb("dev-a", 11, T0),
        hb("dev-a", 9, T0 + MIN),
        hb("dev-a", 12, T0 + 2 * MIN),
    ]);
    let (fresh, _) = accept(&batch);
    let mut snapshot = Snapshot::default();
    let stats = SeqStats {
        before_epoch: 0,
        count: 10,
        min_seq: 1,
        max_seq: 10,
    };
    snapshot.devices.insert(
        "dev-a".into(),
        DeviceRow {
            epoch: examples::EPOCH.0,
            stats,
            ..DeviceRow::default()
        },
    );
    let mut run = Run::new(false);
    let plan = run.observe(&fresh, &snapshot);
    let late: Vec<bool> = plan
        .report
        .accepted
        .iter()
        .map(|e| e.out_of_order)
        .collect();
    assert_eq!(late, [false, true, false]);
    assert_eq!(plan.counts_after, [13]);
}

#[test]
fn liveness_follows_arrival_dated_on_receipt_with_the_identity_of_the_last_birth() {
    let now = T0 + 10_000 * MIN;
    let batch = deliveries(&[
        birth("dev-a", 2, T0 + MIN),
        // dev-a's Last Will: composed at connect, so older than the birth it follows.
        death("dev-a", 1, T0),
        // dev-b: the store has a state received after this batch (the clock stepped back).
        birth("dev-b", 1, T0 + MIN),
        // dev-c died, then came back: the birth arrives last and wins.
        death("dev-c", 2, T0 + 5 * MIN),
        birth("dev-c", 3, T0 + 6 * MIN),
    ]);
    let (fresh, _) = accept(&batch);
    let mut snapshot = Snapshot::default();
    snapshot.devices.insert(
        "dev-b".into(),
        DeviceRow {
            epoch: examples::EPOCH.0,
            state_ms: Some(now + MIN),
            ..DeviceRow::default()
        },
    );
    // dev-a's stored state is a birth dated by a clock far ahead: the death still counts.
    snapshot.devices.insert(
        "dev-a".into(),
        DeviceRow {
            epoch: examples::EPOCH.0,
            state_ms: Some(T0 + 9_000 * MIN),
            ..DeviceRow::default()
        },
    );
    let mut run = Run::new(false);
    let plan = run.observe(&fresh, &snapshot);
    assert_eq!(plan.liveness.len(), 2, "{:?}", plan.liveness);
    let a = &plan.liveness[0];
    assert_eq!((a.device_id, a.online, a.ts_ms), ("dev-a", false, now));
    assert_eq!(a.identity.as_ref().map(|i| i.model), Some("phone-x2-128"));
    assert_eq!(a.identity.as_ref().map(|i| i.device_class), Some("phone"));
    let c = &plan.liveness[1];
    assert_eq!((c.device_id, c.online, c.ts_ms), ("dev-c", true, now));
    assert!(c.identity.is_some());
}

#[test]
fn a_device_is_scored_once_per_batch_and_only_on_telemetry() {
    let batch = deliveries(&[
        hb("dev-a", 1, T0),
        hb("dev-a", 2, T0 + 60 * MIN),
        hb("dev-a", 3, T0 + 120 * MIN),
        hb("dev-b", 1, T0),
        birth("dev-c", 1, T0),
    ]);
    let (fresh, _) = accept(&batch);
    let mut run = Run::new(false);
    let plan = run.observe(&fresh, &Snapshot::default());
    assert_eq!(plan.report.scored.len(), 2, "dev-a and dev-b, not dev-c");
    let scored: Vec<&str> = plan.scores.iter().map(|s| s.device_id.as_str()).collect();
    assert_eq!(
        scored,
        ["dev-a", "dev-b"],
        "first scores are always written"
    );
    assert_eq!(
        plan.scores[0].scored_ms,
        T0 + 120 * MIN,
        "at the newest telemetry"
    );
    assert!(plan.candidates.is_empty(), "no alarm, no candidate");
    // The cache followed: the next batch of dev-a is in step with the store.
    assert!(run.cache.is_current("dev-a", 3));

    // The same score again is not written again.
    let again = deliveries(&[hb("dev-b", 2, T0)]);
    let (fresh2, _) = accept(&again);
    let mut snapshot = Snapshot::default();
    let stats = SeqStats {
        before_epoch: 0,
        count: 1,
        min_seq: 1,
        max_seq: 1,
    };
    snapshot.devices.insert(
        "dev-b".into(),
        DeviceRow {
            epoch: examples::EPOCH.0,
            stats,
            ..DeviceRow::default()
        },
    );
    let plan = run.observe(&fresh2, &snapshot);
    assert_eq!(plan.report.scored.len(), 1);
    assert!(
        plan.scores.is_empty(),
        "an unchanged score is not rewritten"
    );
}

#[test]
fn a_challenger_scores_in_the_shadow_and_decides_nothing() {
    let batch = deliveries(&[hb("dev-a", 1, T0), hb("dev-b", 1, T0)]);
    let (fresh, _) = accept(&batch);
    let mut run = Run::new(false);
    let mut challenger = model(true);
    challenger.version = "challenger-1".into();
    run.challenger = Some(challenger);
    let plan = run.observe(&fresh, &Snapshot::default());
    assert_eq!(plan.scores.len(), 2);
    for s in &plan.scores {
        assert!(!s.alarm, "the champion's own score");
        let shadow = s.shadow.as_ref().expect("scored by the challenger too");
        assert!(shadow.alarm, "the challenger alarms at threshold 0");
        assert_eq!(shadow.version, "challenger-1");
        assert!((shadow.risk - s.risk).abs() < 1e-12, "the same trees here");
    }
    assert!(
        plan.candidates.is_empty(),
        "the challenger's alarm opens nothing"
    );
    // The challenger goes: the scores are written again, without a shadow.
    run.challenger = None;
    let again = deliveries(&[hb("dev-a", 2, T0)]);
    let (fresh2, _) = accept(&again);
    let mut snapshot = Snapshot::default();
    snapshot.devices.insert(
        "dev-a".into(),
        DeviceRow {
            epoch: examples::EPOCH.0,
            stats: SeqStats {
                before_epoch: 0,
                count: 1,
                min_seq: 1,
                max_seq: 1,
            },
            ..DeviceRow::default()
        },
    );
    let plan = run.observe(&fresh2, &snapshot);
    assert_eq!(plan.scores.len(), 1, "the shadow went: a write");
    assert_eq!(plan.scores[0].shadow, None);
}

#[test]
fn a_cache_out_of_step_is_rebuilt_from_the_stored_history_and_the_batch() {
    let stored_msg = hb("dev-a", 1, T0);
    let stored = StoredMessage {
        ts_ms: T0,
        seq: 1,
        channel: "heartbeat".into(),
        payload: String::from_utf8(stored_msg.encode(&Limits::default()).unwrap()).unwrap(),
    };
    let batch = deliveries(&[hb("dev-a", 2, T0 + 60 * MIN)]);
    let (fresh, _) = accept(&batch);
    let mut snapshot = Snapshot::default();
    let stats = SeqStats {
        before_epoch: 0,
        count: 1,
        min_seq: 1,
        max_seq: 1,
    };
    snapshot.devices.insert(
        "dev-a".into(),
        DeviceRow {
            epoch: examples::EPOCH.0,
            stats,
            ..DeviceRow::default()
        },
    );
    snapshot.histories.insert("dev-a".into(), vec![stored]);
    let mut run = Run::new(false);
    assert!(
        !run.cache.is_current("dev-a", 1),
        "a restart: nothing cached"
    );
    let plan = run.observe(&fresh, &snapshot);
    assert!(
        run.cache.is_current("dev-a", 2),
        "rebuilt: stored plus batch"
    );
    assert_eq!(plan.report.scored.len(), 1);
    assert_eq!(
        (
            plan.report.restored,
            plan.report.rebuilt,
            plan.report.replayed
        ),
        (0, 1, 1)
    );
    // The state it leaves is written back, for the next replica to pick up.
    let (device, written) = &plan.feature_states[0];
    assert_eq!((*device, written.msg_count), ("dev-a", 2));

    // Another process, later: another replica stored seq 3 meanwhile (the state was
    // written at 2), and this batch brings seq 4. The stored state and the one message
    // since stand in for the history.
    let history = usable_state(written, 3).expect("this build's own snapshot");
    let mut wrong = written.clone();
    wrong.version = "0-0000".into();
    assert!(usable_state(&wrong, 3).is_none(), "another feature schema");
    assert!(
        usable_state(written, 1).is_none(),
        "newer than the store: not this store's"
    );
    let third = hb("dev-a", 3, T0 + 120 * MIN);
    let since = vec![StoredMessage {
        ts_ms: T0 + 120 * MIN,
        seq: 3,
        channel: "heartbeat".into(),
        payload: String::from_utf8(third.encode(&Limits::default()).unwrap()).unwrap(),
    }];
    let next = deliveries(&[hb("dev-a", 4, T0 + 180 * MIN)]);
    let (fresh, _) = accept(&next);
    let row = |count| DeviceRow {
        epoch: examples::EPOCH.0,
        stats: SeqStats {
            before_epoch: 0,
            count,
            min_seq: 1,
            max_seq: count,
        },
        ..DeviceRow::default()
    };
    let mut snapshot = Snapshot::default();
    snapshot.devices.insert("dev-a".into(), row(3));
    snapshot.states.insert(
        "dev-a".into(),
        StoredState {
            history,
            count: 2,
            since,
        },
    );
    let mut other = Run::new(false);
    let plan = other.observe(&fresh, &snapshot);
    assert_eq!(
        (
            plan.report.restored,
            plan.report.rebuilt,
            plan.report.replayed
        ),
        (1, 0, 1)
    );
    assert!(other.cache.is_current("dev-a", 4));
    assert!(
        plan.feature_states.is_empty(),
        "not due: 3 → 4 crosses no multiple"
    );
    // The same features as the process that saw every message.
    let mut first = run;
    let both = deliveries(&[third, hb("dev-a", 4, T0 + 180 * MIN)]);
    let (fresh_both, _) = accept(&both);
    let mut seen = Snapshot::default();
    seen.devices.insert("dev-a".into(), row(2));
    let same = first.observe(&fresh_both, &seen);
    assert_eq!(
        plan.report.scored[0].risk, same.report.scored[0].risk,
        "the same features either way"
    );
}

#[test]
fn an_alarm_opens_one_ticket_with_its_offer_command_and_announcement() {
    let batch = deliveries(&[hb("dev-a", 1, T0), hb("dev-a", 2, T0 + 60 * MIN)]);
    let (fresh, _) = accept(&batch);
    let mut run = Run::new(true);
    let mut plan = run.observe(&fresh, &Snapshot::default());
    assert_eq!(plan.candidates.len(), 1);
    run.decide(&mut plan, &HashMap::new());
    assert!(plan.candidates.is_empty());
    assert_eq!(plan.openings.len(), 1);
    let o = &plan.openings[0];
    assert_eq!(o.ticket.device_id, "dev-a");
    assert_eq!(o.ticket.tier, Tier::Medium, "unknown price: medium");
    assert!(o.ticket.ticket_ref.starts_with("T-"));
    assert_eq!(o.command.topic, "fleet/acme/dev-a/cmd");
    let cmd = protocol::decode(
        &o.command.topic,
        o.command.payload.as_bytes(),
        &Limits::default(),
    )
    .expect("the offer command is valid protocol");
    match cmd.message {
        Message::Command(c) => assert_eq!(c.command_id.as_str(), o.command.command_id),
        other => panic!("not a command: {other:?}"),
    }
    let evidence: Evidence = serde_json::from_str(&o.ticket.evidence).unwrap();
    assert_eq!(evidence.telemetry.len(), 2, "the excerpt behind the score");
    assert_eq!(o.announced.as_ref(), Some(&evidence), "webhooks configured");

    // No webhooks configured, no announcement.
    run.settings.webhooks.clear();
    let mut plan = run.observe(&fresh, &Snapshot::default());
    run.decide(&mut plan, &HashMap::new());
    assert!(plan.openings[0].announced.is_none());
}

#[test]
fn a_device_drawn_for_the_random_sample_gets_a_free_check_that_carries_its_weight() {
    let now = T0 + 10_000 * MIN;
    let share = 0.05;
    let drawn = |yes: bool| {
        (0..)
            .map(|i| format!("dev-{i}"))
            .find(|d| (crate::policy::sample::draw(d, now) < share) == yes)
            .unwrap()
    };
    let (lucky, other) = (drawn(true), drawn(false));
    let batch = deliveries(&[hb(&lucky, 1, T0), hb(&other, 1, T0)]);
    let (fresh, _) = accept(&batch);
    let mut run = Run::new(false);
    let mut plan = run.observe(&fresh, &Snapshot::default());
    assert!(plan.candidates.is_empty(), "off by default");
    run.policy.random_check_share = share;
    plan = run.observe(&fresh, &Snapshot::default());
    run.decide(&mut plan, &HashMap::new());
    assert_eq!(plan.openings.len(), 1, "only the drawn device");
    let t = &plan.openings[0].ticket;
    assert_eq!(t.device_id, lucky);
    assert_eq!((t.offer, t.tier), (OfferKind::Inspection, Tier::Low));
    assert_eq!(t.quote_minor, None, "the check is free");
    let f: ScoredFeatures = serde_json::from_str(t.features.as_deref().unwrap()).unwrap();
    assert_eq!(f.sample_weight, Some(20.0));
    let evidence: Evidence = serde_json::from_str(&t.evidence).unwrap();
    assert!(
        evidence
            .reasoning
            .iter()
            .any(|r| r.contains("random inspection sample")),
        "{:?}",
        evidence.reasoning
    );
}

#[test]
fn an_open_ticket_for_the_problem_or_a_recent_close_holds_the_decision() {
    let batch = deliveries(&[hb("dev-a", 1, T0)]);
    let (fresh, _) = accept(&batch);
    let mut run = Run::new(true);
    let plan = run.observe(&fresh, &Snapshot::default());
    let problem = plan.candidates[0].problem;

    let open = DeviceContext {
        open: vec![OpenTicket {
            id: 3,
            ticket_ref: "T-3".into(),
            problem,
            state: TicketState::Offered,
            tier: Tier::High,
        }],
        ..DeviceContext::default()
    };
    let mut p = plan.clone();
    run.decide(&mut p, &HashMap::from([("dev-a".to_owned(), open)]));
    assert!(p.openings.is_empty() && p.moves.is_empty() && p.report.held.is_empty());

    // A lower-tier ticket for the problem is superseded.
    let tip = DeviceContext {
        open: vec![OpenTicket {
            id: 4,
            ticket_ref: "T-4".into(),
            problem,
            state: TicketState::Offered,
            tier: Tier::Low,
        }],
        ..DeviceContext::default()
    };
    let mut p = plan.clone();
    run.decide(&mut p, &HashMap::from([("dev-a".to_owned(), tip.clone())]));
    assert_eq!(p.openings.len(), 1);
    assert_eq!(
        (p.moves[0].ticket_id, p.moves[0].to),
        (4, TicketState::Cancelled)
    );
    // The device is told first: a withdraw of the old offer, which the new one waits for.
    let o = &p.openings[0];
    let w = o
        .withdraw
        .as_ref()
        .expect("a schema-2 device gets a withdraw");
    let decoded = protocol::decode(&w.topic, w.payload.as_bytes(), &Limits::default()).unwrap();
    match decoded.message {
        Message::Command(cmd) => match cmd.body {
            protocol::command::CommandBody::Withdraw(wd) => {
                assert_eq!(wd.offer.as_str(), "offer-T-4");
                assert_eq!(wd.ticket.as_str(), "T-4");
                assert_eq!(wd.reason, WithdrawReason::Superseded);
                assert_eq!(cmd.expires_ts_ms.map(|t| t.0), w.expires_ms);
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(
        o.command.after_command.as_deref(),
        Some(w.command_id.as_str())
    );
    // A schema-1 device cannot read a withdraw: its offer goes alone, in schema 1.
    let mut old = plan.clone();
    old.candidates[0].schema = 1;
    run.decide(&mut old, &HashMap::from([("dev-a".to_owned(), tip)]));
    let o = &old.openings[0];
    assert!(o.withdraw.is_none() && o.command.after_command.is_none());
    assert!(
        o.command.payload.starts_with(r#"{"schema":1,"#),
        "{}",
        o.command.payload
    );

    // One the customer accepted stands: no cancellation, and no second offer.
    for state in [TicketState::Accepted, TicketState::InProgress] {
        let accepted = DeviceContext {
            open: vec![OpenTicket {
                id: 5,
                ticket_ref: "T-5".into(),
                problem,
                state,
                tier: Tier::Low,
            }],
            ..DeviceContext::default()
        };
        let mut p = plan.clone();
        run.decide(&mut p, &HashMap::from([("dev-a".to_owned(), accepted)]));
        assert!(p.openings.is_empty() && p.moves.is_empty(), "{state}");
    }

    let cooling = DeviceContext {
        contacts: ContactHistory {
            last_closed_ms: Some(T0 + 9_000 * MIN),
            contacts_in_window: 1,
        },
        ..DeviceContext::default()
    };
    let mut p = plan.clone();
    run.decide(&mut p, &HashMap::from([("dev-a".to_owned(), cooling)]));
    assert!(p.openings.is_empty());
    assert_eq!(p.report.held, [("dev-a".to_owned(), Hold::CoolDown)]);
}

#[test]
fn answers_move_their_ticket_once_and_a_taken_tip_resolves() {
    let batch = deliveries(&[
        ack("dev-a", 1, "offer-T-1", AckStatus::Received),
        ack("dev-a", 2, "offer-T-1", AckStatus::Accepted),
        ack("dev-a", 3, "offer-T-1", AckStatus::Accepted),
        ack("dev-a", 4, "unknown-cmd", AckStatus::Accepted),
    ]);
    let (fresh, _) = accept(&batch);
    let mut snapshot = Snapshot::default();
    snapshot.commands.insert(
        ("dev-a".into(), "offer-T-1".into()),
        AnsweredCommand {
            ticket: Some((9, TicketState::Opened, OfferKind::SelfServiceTip)),
        },
    );
    let mut run = Run::new(false);
    let plan = run.observe(&fresh, &snapshot);
    assert_eq!(plan.answers.len(), 4, "every answer is recorded");
    let moves: Vec<(TicketState, TicketState, &str)> =
        plan.moves.iter().map(|m| (m.from, m.to, m.actor)).collect();
    assert_eq!(
        moves,
        [
            (TicketState::Opened, TicketState::Offered, "device"),
            (TicketState::Offered, TicketState::Accepted, "device"),
            (TicketState::Accepted, TicketState::Resolved, "customer"),
        ]
    );
    assert!(plan.moves.iter().all(|m| m.ticket_id == 9));
}

#[test]
fn a_decline_in_the_same_batch_counts_as_a_recent_close() {
    let batch = deliveries(&[
        ack("dev-a", 1, "offer-T-2", AckStatus::Declined),
        hb("dev-a", 2, T0),
    ]);
    let (fresh, _) = accept(&batch);
    let mut run = Run::new(true);
    let mut snapshot = Snapshot::default();
    snapshot.commands.insert(
        ("dev-a".into(), "offer-T-2".into()),
        AnsweredCommand {
            ticket: Some((5, TicketState::Offered, OfferKind::Inspection)),
        },
    );
    let mut plan = run.observe(&fresh, &snapshot);
    assert_eq!(plan.moves.len(), 1, "offered → declined");
    let problem = plan.candidates[0].problem;
    let ctx = DeviceContext {
        open: vec![OpenTicket {
            id: 5,
            ticket_ref: "T-5".into(),
            problem,
            state: TicketState::Offered,
            tier: Tier::Low,
        }],
        ..DeviceContext::default()
    };
    run.decide(&mut plan, &HashMap::from([("dev-a".to_owned(), ctx)]));
    assert!(plan.openings.is_empty(), "no ticket right after a decline");
    assert_eq!(
        plan.moves.len(),
        1,
        "nothing superseded: the ticket is closed"
    );
    assert_eq!(plan.report.held, [("dev-a".to_owned(), Hold::CoolDown)]);
}

#[test]
fn every_answer_path_is_legal() {
    for from in TicketState::ALL {
        for status in AckStatus::ALL {
            for offer in OfferKind::ALL {
                let mut state = from;
                for (to, _, _) in answer_moves(from, status, offer) {
                    assert!(state.can_move_to(to), "{state} → {to} on {status:?}");
                    state = to;
                }
            }
        }
    }
    assert!(answer_moves(
        TicketState::Declined,
        AckStatus::Accepted,
        OfferKind::Inspection
    )
    .is_empty());
}

#[test]
fn a_payload_over_the_limit_is_kept_as_a_bounded_excerpt() {
    let topic = "fleet/acme/dev-a/heartbeat".to_owned();
    let batch = [
        Delivery {
            topic: topic.clone(),
            payload: vec![b' '; 100_000],
        },
        Delivery {
            topic,
            payload: b"{ nope".to_vec(),
        },
    ];
    let d = decode::decode(&batch, &Limits::default());
    assert_eq!(d.rejected[0].reason, "too_large");
    let mut run = Run::new(false);
    let plan = observe(
        Timestamp(T0),
        &d.rejected,
        &[],
        0,
        &Snapshot::default(),
        &HashMap::new(),
        &mut run.cache,
        &run.model,
        None,
        &run.policy,
        &run.settings,
    );
    let big = &plan.dead_letters[0];
    assert_eq!(big.payload.len(), DEAD_LETTER_EXCERPT);
    assert!(
        big.detail.contains("of 100000 bytes are kept"),
        "{}",
        big.detail
    );
    let small = &plan.dead_letters[1];
    assert_eq!(
        small.payload, b"{ nope",
        "a payload within the limit is kept whole"
    );
    assert_eq!(small.detail, d.rejected[1].detail);
}

#[test]
fn only_seqs_the_store_may_hold_are_looked_up() {
    let batch = deliveries(&[
        hb("dev-a", 11, T0),
        hb("dev-a", 3, T0 + MIN),
        hb("dev-a", 9, T0 + 2 * MIN),
        hb("dev-a", 12, T0 + 3 * MIN),
        hb("dev-b", 1, T0),
        hb("dev-c", 20, T0),
    ]);
    let (fresh, _) = accept(&batch);
    let row = |max_seq| DeviceRow {
        epoch: examples::EPOCH.0,
        stats: SeqStats {
            before_epoch: 0,
            count: max_seq,
            min_seq: 1,
            max_seq,
        },
        ..DeviceRow::default()
    };
    let mut rows = HashMap::from([("dev-a".to_owned(), row(10)), ("dev-c".to_owned(), row(19))]);
    let e = examples::EPOCH.0;
    let epochs = epochs::judge_batch(&fresh, &rows, &HashMap::new());
    assert_eq!(
        dedup::maybe_stored(&fresh, &rows, &epochs),
        [("dev-a", e, 3, 9)],
        "dev-a's live seqs, new dev-b and dev-c's next seq need no lookup"
    );
    // Pruned up to seq 5: seq 3 is known a repeat without a lookup.
    rows.get_mut("dev-a").unwrap().pruned_seq = Some(5);
    assert_eq!(
        dedup::maybe_stored(&fresh, &rows, &epochs),
        [("dev-a", e, 9, 9)]
    );
}

#[test]
fn an_offer_the_registry_cannot_price_is_held_not_a_panic() {
    let batch = deliveries(&[hb("dev-a", 1, T0)]);
    let (fresh, _) = accept(&batch);
    let mut run = Run::new(true);
    let mut plan = run.observe(&fresh, &Snapshot::default());
    // Far past its useful life, out of warranty: a trade-in, quoted in a currency that
    // is no ISO code (the registry's reader filters such codes; this is the last guard).
    let ctx = DeviceContext {
        registration: Registration {
            purchased_ms: Some(T0 - 2_000 * 24 * 60 * MIN),
            warranty_until_ms: Some(T0 - 1_000 * 24 * 60 * MIN),
            price_minor: Some(50_000),
            currency: Some("euro".into()),
            ..Registration::default()
        },
        ..DeviceContext::default()
    };
    run.decide(&mut plan, &HashMap::from([("dev-a".to_owned(), ctx)]));
    assert!(plan.openings.is_empty());
    assert_eq!(plan.report.held, [("dev-a".to_owned(), Hold::Unofferable)]);
    assert!(
        plan.report.unofferable[0].to_string().contains("euro"),
        "{}",
        plan.report.unofferable[0]
    );
}

/// docs/protocol.md §9: `received` need not come first.
#[test]
fn an_answer_without_received_implies_it() {
    for (status, end) in [
        (AckStatus::Accepted, TicketState::Accepted),
        (AckStatus::Declined, TicketState::Declined),
    ] {
        let moves = answer_moves(TicketState::Opened, status, OfferKind::Inspection);
        let path: Vec<TicketState> = moves.iter().map(|m| m.0).collect();
        assert_eq!(path, [TicketState::Offered, end], "{status:?}");
    }
}

/// A heartbeat of `epoch` (0: a schema-1 message, which carries none).
fn hb_in(epoch: u32, device: &str, seq: u64, ts: u64) -> Message {
    let mut env = at(examples::heartbeat(), device, seq, ts);
    env.epoch = protocol::Epoch(epoch);
    if epoch == 0 {
        env.schema = 1;
    }
    Message::Heartbeat(env)
}

fn stored_row(epoch: u32, count: u64, max_seq: u64) -> DeviceRow {
    DeviceRow {
        epoch,
        stats: SeqStats {
            count,
            before_epoch: 0,
            min_seq: 1,
            max_seq,
        },
        ..DeviceRow::default()
    }
}

#[test]
fn a_device_that_lost_its_state_starts_a_new_epoch_and_its_messages_are_new() {
    // dev-a counted to 500 in epoch 7, lost its state and counts from 1 in epoch 9; a
    // late redelivery of epoch 7 (seq 499) arrives among the new messages.
    let batch = deliveries(&[
        hb_in(9, "dev-a", 1, T0),
        hb_in(7, "dev-a", 499, T0 + MIN),
        hb_in(9, "dev-a", 2, T0 + 2 * MIN),
    ]);
    let (fresh, _) = accept(&batch);
    let rows = HashMap::from([("dev-a".to_owned(), stored_row(7, 500, 500))]);
    assert!(epochs::needs_known(rows.get("dev-a"), &fresh));
    let known = HashMap::from([("dev-a".to_owned(), vec![7])]);
    let judged = epochs::judge_batch(&fresh, &rows, &known);
    let ep = &judged["dev-a"];
    assert_eq!((ep.before, ep.current, ep.resets), (Some(7), 9, 1));
    assert_eq!(ep.new, [(9, 1)]);
    // Seqs 1 and 2 are at or below the old high-water mark, but of a new epoch: no
    // lookup. The late one of epoch 7 is looked up in its own epoch.
    assert_eq!(
        dedup::maybe_stored(&fresh, &rows, &judged),
        [("dev-a", 7, 499, 499)]
    );

    let mut run = Run::new(false);
    let snapshot = Snapshot {
        devices: rows,
        known_epochs: known,
        ..Snapshot::default()
    };
    let plan = run.observe(&fresh, &snapshot);
    let rows: Vec<(u32, u64)> = plan.messages.iter().map(|m| (m.epoch, m.seq)).collect();
    assert_eq!(rows, [(9, 1), (7, 499), (9, 2)], "all three are stored");
    let a = &plan.arrivals[0];
    assert_eq!(
        (a.epoch, a.min_seq, a.max_seq, a.other_epochs, a.resets),
        (9, 1, 2, 1, 1),
        "the accounting starts again from the new epoch's messages"
    );
    assert_eq!(plan.counts_after, [503]);
    assert_eq!(plan.epochs.len(), 1);
    assert_eq!((plan.epochs[0].epoch, plan.epochs[0].first_seq), (9, 1));
    assert_eq!(plan.report.seq_resets, [("dev-a".to_owned(), 9, 1)]);
    let late: Vec<bool> = plan
        .report
        .accepted
        .iter()
        .map(|e| e.out_of_order)
        .collect();
    assert_eq!(
        late,
        [false, true, false],
        "order is judged within an epoch: 499 is behind epoch 7's 500, 1 and 2 are in order"
    );
}

#[test]
fn a_first_epoch_is_no_reset_and_old_epochs_never_become_current_again() {
    let judge = |row: Option<DeviceRow>, known: &[u32], msgs: &[Message]| {
        let batch = deliveries(msgs);
        let (fresh, _) = accept(&batch);
        epochs::judge(row.as_ref(), known, &fresh)
    };
    // A new device: its first epoch is recorded, not counted.
    let ep = judge(None, &[], &[hb_in(5, "dev-a", 1, T0)]);
    assert_eq!(
        (ep.before, ep.current, ep.resets, ep.new.clone()),
        (None, 5, 0, vec![(5, 1)])
    );
    // A schema-1 device updated to schema 2: from epoch 0 to its first, no reset.
    let ep = judge(
        Some(stored_row(0, 40, 40)),
        &[0],
        &[hb_in(5, "dev-a", 41, T0)],
    );
    assert_eq!((ep.current, ep.resets), (5, 0));
    // Registered by the operator but never heard: a new device too.
    let ep = judge(Some(stored_row(0, 0, 0)), &[], &[hb_in(5, "dev-a", 1, T0)]);
    assert_eq!((ep.before, ep.current, ep.resets), (None, 5, 0));
    // Current is 9; a late message of known epoch 7 changes nothing.
    let ep = judge(
        Some(stored_row(9, 10, 10)),
        &[7, 9],
        &[hb_in(7, "dev-a", 3, T0)],
    );
    assert_eq!((ep.current, ep.resets, ep.new.len()), (9, 0, 0));
    // Two resets in one batch count twice; the last new epoch is current.
    let ep = judge(
        Some(stored_row(9, 10, 10)),
        &[9],
        &[
            hb_in(11, "dev-a", 1, T0),
            hb_in(9, "dev-a", 11, T0),
            hb_in(12, "dev-a", 1, T0),
        ],
    );
    assert_eq!((ep.current, ep.resets), (12, 2));
    assert_eq!(ep.new, [(11, 1), (12, 1)]);
    // Schema 1 keeps epoch 0 throughout: nothing to judge.
    let row = stored_row(0, 10, 10);
    let batch = deliveries(&[hb_in(0, "dev-a", 11, T0)]);
    let (fresh, _) = accept(&batch);
    assert!(!epochs::needs_known(Some(&row), &fresh));
}

#[test]
fn heartbeats_are_summed_per_device_and_day_for_the_firmware_rollup() {
    // The example heartbeat: an hour running, 3410 s crash-free, one brown-out (an
    // unexpected restart) and one crash. T0 is 08:00; T0 + 17 h is the next day.
    let mut user_restart = at(examples::heartbeat(), "dev-a", 3, T0 + 2 * MIN);
    user_restart.body.reboots =
        std::collections::BTreeMap::from([(protocol::reboot::RebootReason::UserRequest, 2)]);
    let batch = deliveries(&[
        hb("dev-a", 1, T0),
        hb("dev-a", 2, T0 + MIN),
        Message::Heartbeat(user_restart),
        hb("dev-a", 4, T0 + 17 * 60 * MIN),
        birth("dev-b", 1, T0),
    ]);
    let (fresh, _) = accept(&batch);
    let plan = Run::new(false).observe(&fresh, &Snapshot::default());
    let day = T0 - T0 % 86_400_000;
    let got: Vec<(&str, u64, u64, u64, u64, u64)> = plan
        .usage
        .iter()
        .map(|u| {
            (
                u.device_id,
                u.day_ms,
                u.operational_s,
                u.crash_free_s,
                u.unexpected_restarts,
                u.crashes,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("dev-a", day, 3 * 3600, 3 * 3410, 2, 3),
            ("dev-a", day + 86_400_000, 3600, 3410, 1, 1),
        ],
        "a user's restart is not counted; a birth adds no usage"
    );
    assert!(plan
        .usage
        .iter()
        .all(|u| u.boot_id == examples::heartbeat().boot_id.as_str()));
    let boots: Vec<(&str, &str, &str)> = plan
        .boots
        .iter()
        .map(|b| (b.device_id, b.boot_id, b.firmware))
        .collect();
    let birth = examples::birth();
    let protocol::state::State::Online(b) = &birth.body else {
        panic!("the example birth is a birth")
    };
    assert_eq!(
        boots,
        [("dev-b", birth.boot_id.as_str(), b.firmware.as_str())],
        "the birth names its boot's firmware"
    );
}
