//! The agent's core: a state machine with no I/O and no clock of its own.
//!
//! The host (the `edge-agent` binary on Linux, firmware on a microcontroller, or the
//! simulator) calls [`Agent::boot`] once per boot, [`Agent::tick`] every sample
//! interval and the `record_*` methods when the firmware sees a fault, always passing
//! the time. Each call returns the protocol messages to publish, already numbered.
//! The host persists [`Agent::state`] whenever [`Agent::take_dirty`] says so, and gives
//! it back to the next boot.

use std::collections::VecDeque;

use protocol::command::{
    AckStatus, Command, CommandAck, CommandBody, DiagnosticCheck, DiagnosticResult, Offer,
};
use protocol::envelope::Envelope;
use protocol::event::{CrashEvent, Event, RebootEvent, StorageErrorEvent};
use protocol::ids::{BootId, CommandId, Epoch, Seq};
use protocol::reboot::RebootReason;
use protocol::state::{Birth, Death, DeathCause, State};
use protocol::{DeviceId, Message, Timestamp};
use serde::{Deserialize, Serialize};

use crate::hal::{Platform, ResetCause};
use crate::reboot_log::{classify, BootRecord, RebootLog};
use crate::sampling::{Readings, Sampler};
use crate::settings::Settings;

/// How many answered commands the agent remembers, to answer a redelivery the same way.
pub const COMMAND_MEMORY: usize = 32;

/// Who the device is: fixed for a firmware build.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The device's id.
    pub device_id: DeviceId,
    /// What the birth message announces.
    pub birth: Birth,
}

/// Everything the agent persists between boots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    next_seq: Seq,
    /// The run of `next_seq`; absent in a state file written before schema 2, and then
    /// chosen at the next boot.
    #[serde(default)]
    epoch: Epoch,
    boots: u64,
    boot: BootRecord,
    reboots: RebootLog,
    settings: Settings,
    sampler: Sampler,
    answered: VecDeque<(CommandId, AckStatus)>,
    open_offers: Vec<CommandId>,
    spool_dropped: u32,
}

impl AgentState {
    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The next sequence number the agent will use.
    pub fn next_seq(&self) -> Seq {
        self.next_seq
    }

    /// The run of sequence numbers in use: chosen at random when the count starts.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The restarts recorded.
    pub fn reboots(&self) -> &RebootLog {
        &self.reboots
    }
}

/// What a command produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CommandOutcome {
    /// Acknowledgements to publish.
    pub messages: Vec<Message>,
    /// An offer for the host to show the customer; answer it with [`Agent::answer_offer`].
    pub offer: Option<(CommandId, Offer)>,
    /// An offer shown earlier that the host must stop showing (withdrawn by the cloud).
    pub withdrawn: Option<CommandId>,
}

/// The agent of one device.
#[derive(Debug, Clone)]
pub struct Agent {
    identity: Identity,
    state: AgentState,
    dirty: bool,
}

impl Agent {
    /// Starts a boot: classifies why the device restarted from the previous boot's
    /// record and the hardware reset cause, and returns the reboot event.
    pub fn boot(
        identity: Identity,
        saved: Option<AgentState>,
        defaults: Settings,
        platform: &mut dyn Platform,
        now: Timestamp,
    ) -> (Agent, Vec<Message>) {
        let cause = platform.reset_cause().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reset cause unreadable");
            ResetCause::Unknown
        });
        let classified = classify(saved.as_ref().map(|s| &s.boot), cause);
        let boots = saved.as_ref().map_or(0, |s| s.boots) + 1;
        let boot_id = BootId::new(format!("{boots:x}-{:08x}", platform.entropy()))
            .expect("hex digits and a dash are a valid boot id");
        let boot = BootRecord {
            boot_id,
            started: now,
            last_alive: now,
            shutdown: None,
            fatal: None,
            last_soc_pct: None,
        };
        let (state, prev) = match saved {
            Some(mut s) => {
                let prev = std::mem::replace(&mut s.boot, boot);
                s.boots = boots;
                (s, Some(prev))
            }
            None => (
                AgentState {
                    next_seq: Seq(1),
                    epoch: Epoch::NONE,
                    boots,
                    boot,
                    reboots: RebootLog::default(),
                    settings: defaults,
                    sampler: Sampler::new(now),
                    answered: VecDeque::new(),
                    open_offers: Vec::new(),
                    spool_dropped: 0,
                },
                None,
            ),
        };
        let mut agent = Agent {
            identity,
            state,
            dirty: true,
        };
        // A new count (or a state file from before epochs) gets its epoch now, so the
        // cloud tells this run of seqs from any earlier one the device lost.
        if agent.state.epoch.is_none() {
            agent.state.epoch = Epoch::from_random(platform.entropy());
        }
        agent.state.reboots.push(now, classified.reason.clone());
        agent.state.sampler.resume(&classified.reason);
        let event = Event::Reboot(RebootEvent {
            reason: classified.reason,
            unclean: classified.unclean,
            prev_boot_id: prev.as_ref().map(|p| p.boot_id.clone()),
            prev_uptime_s: prev.map(|p| p.last_alive.0.saturating_sub(p.started.0) / 1000),
        });
        let msg = agent.event(now, event);
        (agent, vec![msg])
    }

    /// The device's id.
    pub fn device_id(&self) -> &DeviceId {
        &self.identity.device_id
    }

    /// The current boot's id.
    pub fn boot_id(&self) -> &BootId {
        &self.state.boot.boot_id
    }

    /// The persisted state.
    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// True (once) when the state changed in a way the host must persist.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.state.settings
    }

    /// The birth message for a new connection.
    pub fn birth(&mut self, now: Timestamp) -> Message {
        Message::State(self.envelope(now, State::Online(self.identity.birth.clone())))
    }

    /// The Last Will for a new connection; its sequence number is reserved now.
    pub fn will(&mut self, now: Timestamp) -> Message {
        Message::State(self.envelope(
            now,
            State::Offline(Death {
                cause: DeathCause::Will,
            }),
        ))
    }

    /// Samples the hardware once; returns the events tripped and, when the interval is
    /// over, the heartbeat.
    pub fn tick(
        &mut self,
        now: Timestamp,
        platform: &mut dyn Platform,
        connected: bool,
    ) -> Vec<Message> {
        let battery = platform.battery().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "battery unreadable");
            None
        });
        let temp_c = platform
            .temperature_c()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "temperature unreadable");
                None
            })
            .or(battery.and_then(|b| b.temp_c));
        let readings = Readings {
            battery,
            temp_c,
            active: platform.is_active(),
            connected,
        };
        self.state.boot.last_alive = now;
        if let Some(b) = battery {
            self.state.boot.last_soc_pct = Some(b.soc_pct);
        }
        let events = self
            .state
            .sampler
            .sample(now, &readings, &self.state.settings);
        self.state
            .sampler
            .sample_metrics(&platform.custom_metrics());
        let mut out: Vec<Message> = events.into_iter().map(|e| self.event(now, e)).collect();
        if self.state.sampler.interval_due(now, &self.state.settings) {
            let dropped = self.state.spool_dropped;
            let hb = self
                .state
                .sampler
                .close_interval(now, &self.state.reboots, dropped);
            out.push(Message::Heartbeat(self.envelope(now, hb)));
        }
        out
    }

    /// Records a crash the firmware survived (an application crash); returns its event.
    pub fn record_crash(
        &mut self,
        now: Timestamp,
        signature: &str,
        process: Option<&str>,
    ) -> Vec<Message> {
        self.state.sampler.note_crash();
        let e = Event::Crash(CrashEvent {
            signature: signature.to_owned(),
            process: process.map(str::to_owned),
        });
        vec![self.event(now, e)]
    }

    /// Records a storage error; returns its event.
    pub fn record_storage_error(
        &mut self,
        now: Timestamp,
        code: &str,
        detail: Option<&str>,
    ) -> Vec<Message> {
        self.state.sampler.note_storage_error();
        let e = Event::StorageError(StorageErrorEvent {
            code: code.to_owned(),
            detail: detail.map(str::to_owned),
        });
        vec![self.event(now, e)]
    }

    /// Called by the crash handler just before the device resets on a fatal fault: the
    /// next boot reports this reason.
    pub fn record_fatal(&mut self, now: Timestamp, reason: RebootReason) {
        self.state.boot.fatal = Some(reason);
        self.state.boot.last_alive = now;
        self.dirty = true;
    }

    /// An orderly shutdown: records why, so the next boot classifies it, and returns the
    /// offline state message to publish before disconnecting.
    pub fn shutdown(&mut self, now: Timestamp, reason: RebootReason) -> Message {
        self.state.boot.shutdown = Some(reason);
        self.state.boot.last_alive = now;
        Message::State(self.envelope(
            now,
            State::Offline(Death {
                cause: DeathCause::Shutdown,
            }),
        ))
    }

    /// Notes spooled messages dropped to stay in budget; heartbeats report the running total.
    pub fn note_spool_dropped(&mut self, n: u32) {
        if n > 0 {
            self.state.spool_dropped = self.state.spool_dropped.saturating_add(n);
            self.dirty = true;
        }
    }

    /// Handles a command from the cloud and returns its acknowledgement.
    pub fn handle_command(
        &mut self,
        now: Timestamp,
        cmd: &Command,
        platform: &mut dyn Platform,
    ) -> CommandOutcome {
        if let Some((_, status)) = self
            .state
            .answered
            .iter()
            .find(|(id, _)| *id == cmd.command_id)
        {
            // A redelivery: answer as before, do not act twice.
            let status = *status;
            return self.ack_only(
                now,
                &cmd.command_id,
                status,
                Some("duplicate delivery"),
                vec![],
            );
        }
        if cmd.expires_ts_ms.is_some_and(|exp| exp < now) {
            return self.ack_only(
                now,
                &cmd.command_id,
                AckStatus::Rejected,
                Some("expired"),
                vec![],
            );
        }
        match &cmd.body {
            CommandBody::Offer(offer) => {
                self.state.open_offers.push(cmd.command_id.clone());
                let mut out =
                    self.ack_only(now, &cmd.command_id, AckStatus::Received, None, vec![]);
                out.offer = Some((cmd.command_id.clone(), offer.clone()));
                out
            }
            CommandBody::Config(change) => match self.state.settings.with_change(change) {
                Ok(next) => {
                    self.state.settings = next;
                    self.ack_only(now, &cmd.command_id, AckStatus::Done, None, vec![])
                }
                Err(e) => {
                    let detail = e.to_string();
                    self.ack_only(
                        now,
                        &cmd.command_id,
                        AckStatus::Rejected,
                        Some(&detail),
                        vec![],
                    )
                }
            },
            CommandBody::Diagnostic(req) => {
                let checks = if req.checks.is_empty() {
                    vec![
                        DiagnosticCheck::Battery,
                        DiagnosticCheck::Storage,
                        DiagnosticCheck::Thermal,
                        DiagnosticCheck::Connectivity,
                    ]
                } else {
                    req.checks.clone()
                };
                let results: Vec<_> = checks.into_iter().map(|c| run_check(c, platform)).collect();
                let status = if results.iter().all(|r| r.passed) {
                    AckStatus::Done
                } else {
                    AckStatus::Failed
                };
                self.ack_only(now, &cmd.command_id, status, None, results)
            }
            CommandBody::Withdraw(w) => self.withdraw(now, &cmd.command_id, &w.offer),
        }
    }

    /// Takes back an offer: gone from the open offers (the host stops showing it), or
    /// refused when the customer already answered it.
    fn withdraw(&mut self, now: Timestamp, id: &CommandId, offer: &CommandId) -> CommandOutcome {
        if let Some(pos) = self.state.open_offers.iter().position(|o| o == offer) {
            self.state.open_offers.remove(pos);
            let mut out = self.ack_only(now, id, AckStatus::Done, None, vec![]);
            out.withdrawn = Some(offer.clone());
            return out;
        }
        let answered = self
            .state
            .answered
            .iter()
            .find(|(o, s)| o == offer && matches!(s, AckStatus::Accepted | AckStatus::Declined))
            .map(|(_, s)| *s);
        match answered {
            Some(s) => {
                let detail = format!("the customer already answered: {}", s.as_str());
                self.ack_only(now, id, AckStatus::Rejected, Some(&detail), vec![])
            }
            None => self.ack_only(now, id, AckStatus::Done, Some("no such offer held"), vec![]),
        }
    }

    /// The customer's answer to an offer shown earlier.
    pub fn answer_offer(
        &mut self,
        now: Timestamp,
        command_id: &CommandId,
        accepted: bool,
    ) -> Option<Message> {
        let pos = self
            .state
            .open_offers
            .iter()
            .position(|id| id == command_id)?;
        self.state.open_offers.remove(pos);
        let status = if accepted {
            AckStatus::Accepted
        } else {
            AckStatus::Declined
        };
        self.ack_only(now, command_id, status, None, vec![])
            .messages
            .pop()
    }

    fn ack_only(
        &mut self,
        now: Timestamp,
        command_id: &CommandId,
        status: AckStatus,
        detail: Option<&str>,
        diagnostics: Vec<DiagnosticResult>,
    ) -> CommandOutcome {
        match self
            .state
            .answered
            .iter_mut()
            .find(|(id, _)| id == command_id)
        {
            Some(entry) => entry.1 = status,
            None => {
                if self.state.answered.len() == COMMAND_MEMORY {
                    self.state.answered.pop_front();
                }
                self.state.answered.push_back((command_id.clone(), status));
            }
        }
        let ack = CommandAck {
            command_id: command_id.clone(),
            status,
            detail: detail.map(str::to_owned),
            diagnostics,
        };
        CommandOutcome {
            messages: vec![Message::Ack(self.envelope(now, ack))],
            offer: None,
            withdrawn: None,
        }
    }

    fn event(&mut self, now: Timestamp, e: Event) -> Message {
        Message::Event(self.envelope(now, e))
    }

    fn envelope<B>(&mut self, now: Timestamp, body: B) -> Envelope<B> {
        let seq = self.state.next_seq;
        self.state.next_seq = seq.next();
        self.dirty = true;
        Envelope::new(
            self.identity.device_id.clone(),
            (self.state.epoch, seq),
            self.state.boot.boot_id.clone(),
            now,
            body,
        )
    }
}

fn run_check(check: DiagnosticCheck, platform: &mut dyn Platform) -> DiagnosticResult {
    let (passed, detail) = match check {
        DiagnosticCheck::Battery => match platform.battery() {
            Ok(Some(b)) => (true, format!("{:.1} % at {:.2} V", b.soc_pct, b.voltage_v)),
            Ok(None) => (true, "no battery".to_owned()),
            Err(e) => (false, e.to_string()),
        },
        DiagnosticCheck::Storage => match platform.storage_self_test() {
            Ok(()) => (true, "read back what was written".to_owned()),
            Err(e) => (false, e.to_string()),
        },
        DiagnosticCheck::Thermal => match platform.temperature_c() {
            Ok(Some(t)) => (true, format!("{t:.1} °C")),
            Ok(None) => (true, "no sensor".to_owned()),
            Err(e) => (false, e.to_string()),
        },
        // The request arrived over the broker, so the link works.
        DiagnosticCheck::Connectivity => (true, "command received over the broker".to_owned()),
    };
    DiagnosticResult {
        check,
        passed,
        detail: Some(detail),
    }
}

#[cfg(test)]
mod tests {
    use protocol::command::{ConfigChange, DiagnosticRequest, OfferKind};
    use protocol::ids::{BatchId, FirmwareVersion, HardwareRevision, ModelId, TicketRef};
    use protocol::state::DeviceClass;

    use super::*;
    use crate::hal::{BatterySample, HalError};

    struct Fake {
        cause: ResetCause,
        soc: f32,
        storage_ok: bool,
    }

    impl Platform for Fake {
        fn battery(&mut self) -> Result<Option<BatterySample>, HalError> {
            Ok(Some(BatterySample {
                soc_pct: self.soc,
                voltage_v: 3.8,
                charging: false,
                temp_c: Some(30.0),
                soh_pct: Some(90.0),
                cycles: Some(100.0),
            }))
        }
        fn temperature_c(&mut self) -> Result<Option<f32>, HalError> {
            Ok(None)
        }
        fn reset_cause(&mut self) -> Result<ResetCause, HalError> {
            Ok(self.cause)
        }
        fn is_active(&mut self) -> bool {
            true
        }
        fn storage_self_test(&mut self) -> Result<(), HalError> {
            if self.storage_ok {
                Ok(())
            } else {
                Err(HalError::Bus("nand timeout".into()))
            }
        }
        fn entropy(&mut self) -> u32 {
            7
        }
    }

    fn identity() -> Identity {
        Identity {
            device_id: DeviceId::new("dev-1").unwrap(),
            birth: Birth {
                model: ModelId::new("m").unwrap(),
                device_class: DeviceClass::Phone,
                hw_revision: HardwareRevision::new("r1").unwrap(),
                batch: BatchId::new("b").unwrap(),
                firmware: FirmwareVersion::new("1.0").unwrap(),
                agent_version: FirmwareVersion::new("0.1.0").unwrap(),
            },
        }
    }

    const T0: u64 = 1_767_225_600_000;

    fn reboot_of(msgs: &[Message]) -> RebootEvent {
        match &msgs[0] {
            Message::Event(e) => match &e.body {
                Event::Reboot(r) => r.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    fn command(id: &str, body: CommandBody, expires: Option<u64>) -> Command {
        Command {
            schema: 1,
            device_id: DeviceId::new("dev-1").unwrap(),
            command_id: CommandId::new(id).unwrap(),
            ts_ms: Timestamp(T0),
            expires_ts_ms: expires.map(Timestamp),
            body,
        }
    }

    fn ack_status(out: &CommandOutcome) -> AckStatus {
        match &out.messages[0] {
            Message::Ack(a) => a.body.status,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn boots_chain_their_reasons_and_seq_never_goes_back() {
        let mut hw = Fake {
            cause: ResetCause::PowerOn,
            soc: 50.0,
            storage_ok: true,
        };
        let (mut a, msgs) = Agent::boot(
            identity(),
            None,
            Settings::default(),
            &mut hw,
            Timestamp(T0),
        );
        assert_eq!(reboot_of(&msgs).reason, RebootReason::PowerOn);
        a.tick(Timestamp(T0 + 60_000), &mut hw, true);
        let bye = a.shutdown(Timestamp(T0 + 120_000), RebootReason::FirmwareUpdate);
        let last_seq = bye.seq().unwrap();
        let first_boot = a.boot_id().clone();

        hw.cause = ResetCause::Software;
        let (a, msgs) = Agent::boot(
            identity(),
            Some(a.state().clone()),
            Settings::default(),
            &mut hw,
            Timestamp(T0 + 200_000),
        );
        let r = reboot_of(&msgs);
        assert_eq!(
            (r.reason.clone(), r.unclean),
            (RebootReason::FirmwareUpdate, false)
        );
        assert_eq!(r.prev_boot_id, Some(first_boot));
        assert_eq!(r.prev_uptime_s, Some(120));
        assert!(msgs[0].seq().unwrap() > last_seq);

        // A brown-out with no record: unclean, counted in the features.
        hw.cause = ResetCause::BrownOut;
        let (mut a, msgs) = Agent::boot(
            identity(),
            Some(a.state().clone()),
            Settings::default(),
            &mut hw,
            Timestamp(T0 + 300_000),
        );
        assert_eq!(reboot_of(&msgs).reason, RebootReason::BrownOut);
        assert!(reboot_of(&msgs).unclean);
        let hb = a.tick(Timestamp(T0 + 300_000 + 3_600_000), &mut hw, true);
        let Some(Message::Heartbeat(h)) = hb.last() else {
            panic!("{hb:?}")
        };
        assert_eq!(
            h.body.features.as_ref().unwrap().unexpected_reboots_24h,
            Some(1)
        );
        assert_eq!(h.body.reboots.get(&RebootReason::BrownOut), Some(&1));
    }

    #[test]
    fn commands_are_acted_on_once_and_acknowledged() {
        let mut hw = Fake {
            cause: ResetCause::PowerOn,
            soc: 50.0,
            storage_ok: false,
        };
        let (mut a, _) = Agent::boot(
            identity(),
            None,
            Settings::default(),
            &mut hw,
            Timestamp(T0),
        );
        let now = Timestamp(T0 + 1000);

        let cfg = command(
            "c1",
            CommandBody::Config(ConfigChange {
                heartbeat_interval_s: Some(600),
                ..Default::default()
            }),
            None,
        );
        assert_eq!(
            ack_status(&a.handle_command(now, &cfg, &mut hw)),
            AckStatus::Done
        );
        assert_eq!(a.settings().heartbeat_interval_s, 600);
        // Redelivered: same answer, not applied twice (a later change stays).
        let bad = command(
            "c2",
            CommandBody::Config(ConfigChange {
                sample_interval_s: Some(0),
                ..Default::default()
            }),
            None,
        );
        assert_eq!(
            ack_status(&a.handle_command(now, &bad, &mut hw)),
            AckStatus::Rejected
        );
        assert_eq!(
            ack_status(&a.handle_command(now, &cfg, &mut hw)),
            AckStatus::Done
        );

        let expired = command(
            "c3",
            CommandBody::Diagnostic(DiagnosticRequest::default()),
            Some(T0),
        );
        assert_eq!(
            ack_status(&a.handle_command(now, &expired, &mut hw)),
            AckStatus::Rejected
        );

        let diag = command(
            "c4",
            CommandBody::Diagnostic(DiagnosticRequest::default()),
            None,
        );
        let out = a.handle_command(now, &diag, &mut hw);
        assert_eq!(
            ack_status(&out),
            AckStatus::Failed,
            "the storage test fails"
        );
        let Message::Ack(ack) = &out.messages[0] else {
            unreachable!()
        };
        assert_eq!(ack.body.diagnostics.len(), 4);
        assert!(ack
            .body
            .diagnostics
            .iter()
            .any(|d| d.check == DiagnosticCheck::Storage && !d.passed));

        let offer = Offer {
            ticket: TicketRef::new("T-1").unwrap(),
            kind: OfferKind::Inspection,
            title: "Free battery check".into(),
            message: "We noticed".into(),
            quote: None,
            extra: None,
            respond_by_ts_ms: None,
        };
        let out = a.handle_command(
            now,
            &command("c5", CommandBody::Offer(offer.clone()), None),
            &mut hw,
        );
        assert_eq!(ack_status(&out), AckStatus::Received);
        assert_eq!(out.offer, Some((CommandId::new("c5").unwrap(), offer)));
        let answer = a
            .answer_offer(now, &CommandId::new("c5").unwrap(), true)
            .unwrap();
        let Message::Ack(ack) = answer else {
            unreachable!()
        };
        assert_eq!(ack.body.status, AckStatus::Accepted);
        assert!(
            a.answer_offer(now, &CommandId::new("c5").unwrap(), false)
                .is_none(),
            "answered once"
        );
    }

    #[test]
    fn an_epoch_is_chosen_when_the_count_starts_and_kept_across_reboots() {
        let mut hw = Fake {
            cause: ResetCause::PowerOn,
            soc: 50.0,
            storage_ok: true,
        };
        let (a, msgs) = Agent::boot(
            identity(),
            None,
            Settings::default(),
            &mut hw,
            Timestamp(T0),
        );
        let epoch = a.state().epoch();
        assert!(!epoch.is_none());
        let Message::Event(e) = &msgs[0] else {
            panic!("{msgs:?}")
        };
        assert_eq!((e.epoch, e.schema), (epoch, protocol::SCHEMA_VERSION));
        let (a, _) = Agent::boot(
            identity(),
            Some(a.state().clone()),
            Settings::default(),
            &mut hw,
            Timestamp(T0 + 1000),
        );
        assert_eq!(a.state().epoch(), epoch, "a reboot keeps the epoch");
        // A state file from before epochs: the count goes on, under a first epoch.
        let mut old = serde_json::to_value(a.state()).unwrap();
        old.as_object_mut().unwrap().remove("epoch").unwrap();
        let old: AgentState = serde_json::from_value(old).unwrap();
        assert!(old.epoch().is_none());
        let next = old.next_seq();
        let (a, msgs) = Agent::boot(
            identity(),
            Some(old),
            Settings::default(),
            &mut hw,
            Timestamp(T0 + 2000),
        );
        assert!(!a.state().epoch().is_none());
        assert_eq!(msgs[0].seq(), Some(next));
    }

    #[test]
    fn a_withdrawn_offer_is_gone_and_an_answered_one_is_not_taken_back() {
        let mut hw = Fake {
            cause: ResetCause::PowerOn,
            soc: 50.0,
            storage_ok: true,
        };
        let (mut a, _) = Agent::boot(
            identity(),
            None,
            Settings::default(),
            &mut hw,
            Timestamp(T0),
        );
        let now = Timestamp(T0 + 1000);
        let offer = |ticket: &str| Offer {
            ticket: TicketRef::new(ticket).unwrap(),
            kind: OfferKind::Inspection,
            title: "Free battery check".into(),
            message: "We noticed".into(),
            quote: None,
            extra: None,
            respond_by_ts_ms: None,
        };
        let withdraw = |id: &str, offer: &str, ticket: &str| {
            command(
                id,
                CommandBody::Withdraw(protocol::command::Withdrawal {
                    offer: CommandId::new(offer).unwrap(),
                    ticket: TicketRef::new(ticket).unwrap(),
                    reason: protocol::command::WithdrawReason::Superseded,
                }),
                None,
            )
        };
        a.handle_command(
            now,
            &command("o1", CommandBody::Offer(offer("T-1")), None),
            &mut hw,
        );
        let out = a.handle_command(now, &withdraw("w1", "o1", "T-1"), &mut hw);
        assert_eq!(ack_status(&out), AckStatus::Done);
        assert_eq!(out.withdrawn, Some(CommandId::new("o1").unwrap()));
        assert!(
            a.answer_offer(now, &CommandId::new("o1").unwrap(), true)
                .is_none(),
            "a withdrawn offer takes no answer"
        );
        // Redelivered: answered as before, nothing withdrawn twice.
        let again = a.handle_command(now, &withdraw("w1", "o1", "T-1"), &mut hw);
        assert_eq!(
            (ack_status(&again), again.withdrawn),
            (AckStatus::Done, None)
        );
        // Answered before the withdraw arrived: refused, saying how it was answered.
        a.handle_command(
            now,
            &command("o2", CommandBody::Offer(offer("T-2")), None),
            &mut hw,
        );
        a.answer_offer(now, &CommandId::new("o2").unwrap(), true)
            .unwrap();
        let out = a.handle_command(now, &withdraw("w2", "o2", "T-2"), &mut hw);
        assert_eq!(
            (ack_status(&out), out.withdrawn.clone()),
            (AckStatus::Rejected, None)
        );
        let Message::Ack(ack) = &out.messages[0] else {
            unreachable!()
        };
        assert!(ack.body.detail.as_deref().unwrap().contains("accepted"));
        // Never held: done, idempotently.
        let out = a.handle_command(now, &withdraw("w3", "o9", "T-9"), &mut hw);
        assert_eq!((ack_status(&out), out.withdrawn), (AckStatus::Done, None));
    }
}
