//! One valid, realistic example of every message kind: for the contract document, the
//! `fleet-protocol examples` command and other crates' tests.

use std::collections::BTreeMap;

use crate::codec::Message;
use crate::command::*;
use crate::envelope::Envelope;
use crate::event::*;
use crate::heartbeat::*;
use crate::ids::*;
use crate::reboot::RebootReason;
use crate::state::*;

/// The tenant the examples use.
pub fn tenant() -> TenantId {
    TenantId::new("acme").expect("valid")
}

/// The device the examples use.
pub fn device() -> DeviceId {
    DeviceId::new("dev-000123").expect("valid")
}

fn boot() -> BootId {
    BootId::new("7f0c2b9e-3d1a-4c55-9b7e-2a1d4e6f8a90").expect("valid")
}

/// The example device's sequence epoch.
pub const EPOCH: Epoch = Epoch(2_718_281_828);

/// 2026-11-23T08:00:00Z.
const T0: u64 = 1_795_334_400_000;

fn envelope<B>(seq: u64, offset_s: u64, body: B) -> Envelope<B> {
    Envelope::new(
        device(),
        (EPOCH, Seq(seq)),
        boot(),
        Timestamp(T0 + offset_s * 1000),
        body,
    )
}

/// A heartbeat with every section filled in.
pub fn heartbeat() -> Envelope<Heartbeat> {
    envelope(
        1042,
        3600,
        Heartbeat {
            interval_s: 3600,
            operational_s: 3600,
            crash_free_s: 3410,
            active_s: 1260,
            reboots: BTreeMap::from([(RebootReason::BrownOut, 1)]),
            crashes: 1,
            storage_errors: 0,
            battery: Some(BatteryReport {
                soc_start_pct: 64.0,
                soc_end_pct: 41.5,
                soc_min_pct: 41.5,
                max_drop_pct: 12.5,
                voltage_v: 3.62,
                soh_pct: Some(78.4),
                charge_cycles: 812,
                charging_s: 0,
            }),
            thermal: Some(ThermalReport {
                min_c: 29.5,
                mean_c: 34.2,
                max_c: 46.8,
                above_threshold_s: 0,
            }),
            connectivity: ConnectivityReport {
                connected_s: 3540,
                disconnects: 1,
                rssi_dbm: Some(-71),
            },
            features: Some(EdgeFeatures {
                unexpected_reboots_24h: Some(3),
                unexpected_reboots_7d: Some(9),
                soc_drain_pct_per_active_h: Some(21.4),
                soh_slope_pct_per_30d: Some(-1.9),
            }),
            spool_dropped: 0,
            metrics: BTreeMap::from([
                ("gps_on_s".to_owned(), Metric::Timer(540)),
                ("modem_resets".to_owned(), Metric::Count(1)),
                ("touch_latency_ms".to_owned(), Metric::Gauge(18.5)),
            ]),
        },
    )
}

/// An unexpected reboot after a brown-out.
pub fn reboot_event() -> Envelope<Event> {
    envelope(
        1043,
        3700,
        Event::Reboot(RebootEvent {
            reason: RebootReason::BrownOut,
            unclean: true,
            prev_boot_id: Some(BootId::new("0d9e4c1a-5b2f-4e8d-a3c6-9f1b7e2d4c08").expect("valid")),
            prev_uptime_s: Some(86_412),
        }),
    )
}

/// A crash with its signature.
pub fn crash_event() -> Envelope<Event> {
    envelope(
        1044,
        3760,
        Event::Crash(CrashEvent {
            signature: "audio_hal:mix_buffer:412".into(),
            process: Some("audiod".into()),
        }),
    )
}

/// A sudden battery drop.
pub fn battery_drop_event() -> Envelope<Event> {
    envelope(
        1045,
        3800,
        Event::BatteryDrop(BatteryDropEvent {
            from_pct: 38.0,
            to_pct: 19.0,
            window_s: 300,
        }),
    )
}

/// An over-temperature crossing.
pub fn over_temperature_event() -> Envelope<Event> {
    envelope(
        1046,
        3900,
        Event::OverTemperature(OverTemperatureEvent {
            temp_c: 61.5,
            threshold_c: 55.0,
            sensor: Some("battery".into()),
        }),
    )
}

/// A storage error.
pub fn storage_error_event() -> Envelope<Event> {
    envelope(
        1047,
        3950,
        Event::StorageError(StorageErrorEvent {
            code: "io_error".into(),
            detail: Some("EIO writing /data/log/agent.db".into()),
        }),
    )
}

/// The birth message published (retained) after connecting.
pub fn birth() -> Envelope<State> {
    envelope(
        1040,
        0,
        State::Online(Birth {
            model: ModelId::new("phone-x2-128").expect("valid"),
            device_class: DeviceClass::Phone,
            hw_revision: HardwareRevision::new("rev-c").expect("valid"),
            batch: BatchId::new("b2026-07-shz").expect("valid"),
            firmware: FirmwareVersion::new("4.2.1").expect("valid"),
            agent_version: FirmwareVersion::new("0.1.0").expect("valid"),
        }),
    )
}

/// The death message registered as the Last Will. Its `seq` is reserved at connect
/// time, so it is lower than the messages sent after the birth.
pub fn death() -> Envelope<State> {
    envelope(
        1041,
        0,
        State::Offline(Death {
            cause: DeathCause::Will,
        }),
    )
}

/// A trade-in offer with a quote and an extra.
pub fn offer_command() -> Command {
    let mut c = Command::new(
        device(),
        CommandId::new("cmd-5f2a91").expect("valid"),
        Timestamp(T0 + 4000 * 1000),
        CommandBody::Offer(Offer {
            ticket: TicketRef::new("T-20261123-0042").expect("valid"),
            kind: OfferKind::TradeIn,
            title: "Your phone's battery is wearing out".into(),
            message: "We noticed restarts under load. Trade in this phone for a new one:\nwe credit the amount below.".into(),
            quote: Some(Money {
                amount_minor: 14_500,
                currency: "EUR".into(),
            }),
            extra: Some(OfferExtra::Coupon {
                value: Money {
                    amount_minor: 2_000,
                    currency: "EUR".into(),
                },
            }),
            respond_by_ts_ms: Some(Timestamp(T0 + 7 * 86_400 * 1000)),
        }),
    );
    c.expires_ts_ms = Some(Timestamp(T0 + 14 * 86_400 * 1000));
    c
}

/// The withdrawal of an offer a stronger one supersedes (sent before the new offer).
pub fn withdraw_command() -> Command {
    Command::new(
        device(),
        CommandId::new("cmd-5f2a94").expect("valid"),
        Timestamp(T0 + 4300 * 1000),
        CommandBody::Withdraw(Withdrawal {
            offer: CommandId::new("cmd-5f2a91").expect("valid"),
            ticket: TicketRef::new("T-20261123-0042").expect("valid"),
            reason: WithdrawReason::Superseded,
        }),
    )
}

/// A configuration change.
pub fn config_command() -> Command {
    Command::new(
        device(),
        CommandId::new("cmd-5f2a92").expect("valid"),
        Timestamp(T0 + 4100 * 1000),
        CommandBody::Config(ConfigChange {
            heartbeat_interval_s: Some(1800),
            battery_drop_threshold_pct: Some(8.0),
            ..ConfigChange::default()
        }),
    )
}

/// A diagnostic request.
pub fn diagnostic_command() -> Command {
    Command::new(
        device(),
        CommandId::new("cmd-5f2a93").expect("valid"),
        Timestamp(T0 + 4200 * 1000),
        CommandBody::Diagnostic(DiagnosticRequest {
            checks: vec![DiagnosticCheck::Battery, DiagnosticCheck::Storage],
        }),
    )
}

/// The acknowledgement of the diagnostic request, with results.
pub fn diagnostic_ack() -> Envelope<CommandAck> {
    envelope(
        1049,
        4230,
        CommandAck {
            command_id: CommandId::new("cmd-5f2a93").expect("valid"),
            status: AckStatus::Done,
            detail: None,
            diagnostics: vec![
                DiagnosticResult {
                    check: DiagnosticCheck::Battery,
                    passed: false,
                    detail: Some("state of health 78.4% below 80%".into()),
                },
                DiagnosticResult {
                    check: DiagnosticCheck::Storage,
                    passed: true,
                    detail: None,
                },
            ],
        },
    )
}

/// The customer accepted the offer.
pub fn offer_ack() -> Envelope<CommandAck> {
    envelope(
        1048,
        4150,
        CommandAck {
            command_id: CommandId::new("cmd-5f2a91").expect("valid"),
            status: AckStatus::Accepted,
            detail: None,
            diagnostics: vec![],
        },
    )
}

/// Every example, named.
pub fn all() -> Vec<(&'static str, Message)> {
    vec![
        ("birth", Message::State(birth())),
        ("death", Message::State(death())),
        ("heartbeat", Message::Heartbeat(heartbeat())),
        ("event-reboot", Message::Event(reboot_event())),
        ("event-crash", Message::Event(crash_event())),
        ("event-battery-drop", Message::Event(battery_drop_event())),
        (
            "event-over-temperature",
            Message::Event(over_temperature_event()),
        ),
        ("event-storage-error", Message::Event(storage_error_event())),
        ("cmd-offer", Message::Command(offer_command())),
        ("cmd-config", Message::Command(config_command())),
        ("cmd-diagnostic", Message::Command(diagnostic_command())),
        ("cmd-withdraw", Message::Command(withdraw_command())),
        ("ack-offer", Message::Ack(offer_ack())),
        ("ack-diagnostic", Message::Ack(diagnostic_ack())),
    ]
}
