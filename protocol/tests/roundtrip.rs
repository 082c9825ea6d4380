//! Property tests: every valid message survives encode → decode unchanged, and no
//! input, however mangled, makes the decoder panic.

use std::collections::BTreeMap;

use proptest::option;
use proptest::prelude::*;

use protocol::command::*;
use protocol::event::*;
use protocol::heartbeat::*;
use protocol::ids::*;
use protocol::reboot::{RebootClass, RebootReason};
use protocol::state::*;
use protocol::{decode, Envelope, Limits, Message};

const ID: &str = "[A-Za-z0-9._-]{1,64}";
const VERSION: &str = "[A-Za-z0-9._+-]{1,64}";
// Printable text with a non-space character in it; at most 61 bytes even when every
// character is the three-byte '€', so it fits the 64-byte name limit.
const TEXT: &str = "[a-zA-Z0-9][ -~äöü€]{0,20}";

fn id<T: std::str::FromStr + std::fmt::Debug>(re: &'static str) -> impl Strategy<Value = T>
where
    T::Err: std::fmt::Debug,
{
    re.prop_map(|s| s.parse().expect("strategy yields valid ids"))
}

fn ts() -> impl Strategy<Value = Timestamp> {
    let l = Limits::default();
    (l.min_timestamp.0..=l.max_timestamp.0).prop_map(Timestamp)
}

fn pct() -> impl Strategy<Value = f32> {
    0.0f32..=100.0
}

fn reason() -> impl Strategy<Value = RebootReason> {
    let standard: Vec<RebootReason> = RebootReason::standard().map(|(r, _)| r).collect();
    prop_oneof![
        4 => proptest::sample::select(standard),
        1 => (any::<bool>(), id::<VendorCode>("[A-Za-z0-9._-]{1,32}")).prop_map(|(e, code)| {
            RebootReason::Vendor {
                class: if e { RebootClass::Expected } else { RebootClass::Unexpected },
                code,
            }
        }),
    ]
}

fn battery(interval: u32) -> impl Strategy<Value = BatteryReport> {
    (
        pct(),
        pct(),
        0.0f32..=1.0,
        pct(),
        0.0f32..=30.0,
        option::of(0.0f32..=150.0),
        0u32..=100_000,
        0..=interval,
    )
        .prop_map(
            |(start, end, f, drop, v, soh, cycles, charging)| BatteryReport {
                soc_start_pct: start,
                soc_end_pct: end,
                soc_min_pct: start.min(end) * f,
                max_drop_pct: drop,
                voltage_v: v,
                soh_pct: soh,
                charge_cycles: cycles,
                charging_s: charging,
            },
        )
}

fn thermal(interval: u32) -> impl Strategy<Value = ThermalReport> {
    (
        -40.0f32..=150.0,
        -40.0f32..=150.0,
        0.0f32..=1.0,
        0..=interval,
    )
        .prop_map(|(a, b, f, above)| {
            let (lo, hi) = (a.min(b), a.max(b));
            ThermalReport {
                min_c: lo,
                mean_c: (lo + (hi - lo) * f).clamp(lo, hi),
                max_c: hi,
                above_threshold_s: above,
            }
        })
}

fn features() -> impl Strategy<Value = EdgeFeatures> {
    (
        option::of(0u32..=MAX_COUNT),
        option::of(0u32..=MAX_COUNT),
        option::of(0.0f32..=1000.0),
        option::of(-100.0f32..=100.0),
    )
        .prop_map(|(d1, d7, drain, slope)| EdgeFeatures {
            unexpected_reboots_24h: d1,
            unexpected_reboots_7d: d7,
            soc_drain_pct_per_active_h: drain,
            soh_slope_pct_per_30d: slope,
        })
}

fn heartbeat() -> impl Strategy<Value = Heartbeat> {
    (1..=MAX_INTERVAL_S)
        .prop_flat_map(|interval| (Just(interval), 0..=interval))
        .prop_flat_map(|(interval, operational)| {
            (
                (
                    Just(interval),
                    Just(operational),
                    0..=operational,
                    0..=operational,
                ),
                proptest::collection::btree_map(reason(), 0..=MAX_COUNT, 0..4),
                (0..=MAX_COUNT, 0..=MAX_COUNT, 0u32..=u32::MAX),
                option::of(battery(interval)),
                option::of(thermal(interval)),
                (0..=interval, 0..=MAX_COUNT, option::of(-150i16..=0)),
                option::of(features()),
            )
        })
        .prop_map(
            |(
                (interval, operational, crash_free, active),
                reboots,
                (crashes, storage, dropped),
                battery,
                thermal,
                (conn, disc, rssi),
                features,
            )| Heartbeat {
                interval_s: interval,
                operational_s: operational,
                crash_free_s: crash_free,
                active_s: active,
                reboots,
                crashes,
                storage_errors: storage,
                battery,
                thermal,
                connectivity: ConnectivityReport {
                    connected_s: conn,
                    disconnects: disc,
                    rssi_dbm: rssi,
                },
                features,
                spool_dropped: dropped,
                metrics: Default::default(),
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (
            reason(),
            any::<bool>(),
            option::of(id::<BootId>(ID)),
            option::of(0u64..=315_360_000)
        )
            .prop_map(
                |(reason, unclean, prev_boot_id, prev_uptime_s)| Event::Reboot(RebootEvent {
                    reason,
                    unclean,
                    prev_boot_id,
                    prev_uptime_s,
                })
            ),
        (TEXT, option::of(TEXT))
            .prop_map(|(signature, process)| Event::Crash(CrashEvent { signature, process })),
        (0.0f32..=100.0, 0.0f32..=1.0, 1u32..=86_400).prop_filter_map(
            "strict drop",
            |(from, f, window_s)| {
                let to = from * f;
                (to < from).then_some(Event::BatteryDrop(BatteryDropEvent {
                    from_pct: from,
                    to_pct: to,
                    window_s,
                }))
            }
        ),
        (-40.0f32..=150.0, -40.0f32..=150.0, option::of(TEXT)).prop_map(
            |(temp_c, threshold_c, sensor)| {
                Event::OverTemperature(OverTemperatureEvent {
                    temp_c,
                    threshold_c,
                    sensor,
                })
            }
        ),
        (TEXT, option::of(TEXT))
            .prop_map(|(code, detail)| Event::StorageError(StorageErrorEvent { code, detail })),
    ]
}

fn state() -> impl Strategy<Value = State> {
    let class = proptest::sample::select(vec![
        DeviceClass::Phone,
        DeviceClass::Tablet,
        DeviceClass::Speaker,
        DeviceClass::Wearable,
        DeviceClass::Hub,
        DeviceClass::Other,
    ]);
    prop_oneof![
        (id(ID), class, id(VERSION), id(ID), id(VERSION), id(VERSION)).prop_map(
            |(model, device_class, hw_revision, batch, firmware, agent_version)| State::Online(
                Birth {
                    model,
                    device_class,
                    hw_revision,
                    batch,
                    firmware,
                    agent_version,
                }
            )
        ),
        any::<bool>().prop_map(|will| State::Offline(Death {
            cause: if will {
                DeathCause::Will
            } else {
                DeathCause::Shutdown
            },
        })),
    ]
}

fn money() -> impl Strategy<Value = Money> {
    (0u64..=1_000_000_000, "[A-Z]{3}").prop_map(|(amount_minor, currency)| Money {
        amount_minor,
        currency,
    })
}

fn command_body() -> impl Strategy<Value = CommandBody> {
    let kind = proptest::sample::select(vec![
        OfferKind::Inspection,
        OfferKind::Repair,
        OfferKind::BatteryReplacement,
        OfferKind::TradeIn,
        OfferKind::SelfServiceTip,
    ]);
    let extra = option::of(prop_oneof![
        (1u16..=60).prop_map(|months| OfferExtra::ExtendedWarranty { months }),
        money().prop_map(|value| OfferExtra::Coupon { value }),
    ]);
    let check = proptest::sample::select(vec![
        DiagnosticCheck::Battery,
        DiagnosticCheck::Storage,
        DiagnosticCheck::Thermal,
        DiagnosticCheck::Connectivity,
    ]);
    prop_oneof![
        (
            id(ID),
            kind,
            TEXT,
            "[a-zA-Z0-9][ -~\n]{0,200}",
            money(),
            any::<bool>(),
            extra,
            option::of(ts())
        )
            .prop_map(
                |(ticket, kind, title, message, quote, quoted, extra, respond_by_ts_ms)| {
                    CommandBody::Offer(Offer {
                        ticket,
                        kind,
                        title,
                        message,
                        // A trade-in always carries a quote.
                        quote: (quoted || kind == OfferKind::TradeIn).then_some(quote),
                        extra,
                        respond_by_ts_ms,
                    })
                }
            ),
        (
            option::of(60u32..=86_400),
            option::of(1u32..=3_600),
            option::of(1.0f32..=100.0),
            option::of(20.0f32..=150.0)
        )
            .prop_map(
                |(hb, sample, drop, temp)| CommandBody::Config(ConfigChange {
                    heartbeat_interval_s: Some(hb.unwrap_or(3600)),
                    sample_interval_s: sample,
                    battery_drop_threshold_pct: drop,
                    battery_drop_window_s: None,
                    over_temp_threshold_c: temp,
                })
            ),
        proptest::collection::vec(check, 0..4)
            .prop_map(|checks| CommandBody::Diagnostic(DiagnosticRequest { checks })),
    ]
}

fn ack() -> impl Strategy<Value = CommandAck> {
    let status = proptest::sample::select(vec![
        AckStatus::Received,
        AckStatus::Accepted,
        AckStatus::Declined,
        AckStatus::Done,
        AckStatus::Rejected,
        AckStatus::Failed,
    ]);
    let result = (
        proptest::sample::select(vec![DiagnosticCheck::Battery, DiagnosticCheck::Thermal]),
        any::<bool>(),
        option::of(TEXT),
    )
        .prop_map(|(check, passed, detail)| DiagnosticResult {
            check,
            passed,
            detail,
        });
    (
        id(ID),
        status,
        option::of(TEXT),
        proptest::collection::vec(result, 0..3),
    )
        .prop_map(|(command_id, status, detail, diagnostics)| CommandAck {
            command_id,
            status,
            detail,
            diagnostics,
        })
}

fn envelope<B: std::fmt::Debug>(
    body: impl Strategy<Value = B>,
) -> impl Strategy<Value = Envelope<B>> {
    (
        id(ID),
        0..=protocol::MAX_SEQ,
        id(ID),
        ts(),
        any::<bool>(),
        body,
    )
        .prop_map(|(device, seq, boot, ts, historical, body)| {
            let mut e = Envelope::new(device, (Epoch(7), Seq(seq)), boot, ts, body);
            e.historical = historical;
            e
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        envelope(heartbeat()).prop_map(Message::Heartbeat),
        envelope(event()).prop_map(Message::Event),
        envelope(state()).prop_map(Message::State),
        envelope(ack()).prop_map(Message::Ack),
        (
            id(ID),
            id(ID),
            ts(),
            option::of(0u64..=1_000_000_000),
            command_body()
        )
            .prop_map(|(device, cmd_id, ts, expires_in, body)| {
                let mut c = Command::new(device, cmd_id, ts, body);
                c.expires_ts_ms = expires_in
                    .map(|d| Timestamp((ts.0 + d).min(Limits::default().max_timestamp.0)));
                Message::Command(c)
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Integration tests have no lib.rs beside them to persist failures next to;
        // proptest prints the minimal failing input instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_valid_message_round_trips(msg in message(), tenant in id::<TenantId>(ID)) {
        let limits = Limits::default();
        let bytes = msg.encode(&limits).expect("generated messages are valid");
        prop_assert!(bytes.len() <= limits.max_payload_bytes);
        let topic = msg.topic(&tenant).to_string();
        let decoded = decode(&topic, &bytes, &limits).expect("what we encode, we decode");
        prop_assert_eq!(&decoded.topic.tenant, &tenant);
        prop_assert_eq!(decoded.message, msg);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode("fleet/acme/dev-1/heartbeat", &bytes, &Limits::default());
        let _ = decode("fleet/acme/dev-1/event", &bytes, &Limits::default());
    }

    #[test]
    fn mangled_valid_payloads_never_panic(
        msg in message(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let limits = Limits::default();
        let mut bytes = msg.encode(&limits).unwrap();
        let topic = msg.topic(&"t".parse().unwrap()).to_string();
        let i = flip.index(bytes.len());
        bytes[i] = byte;
        let _ = decode(&topic, &bytes, &limits);
        bytes.truncate(cut.index(bytes.len()));
        // A strict prefix of a JSON object is never a complete message.
        prop_assert!(decode(&topic, &bytes, &limits).is_err());
    }
}

#[test]
fn examples_are_valid_and_distinct() {
    let all = protocol::examples::all();
    let mut names = BTreeMap::new();
    for (name, msg) in &all {
        let bytes = msg
            .encode(&Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let topic = msg.topic(&protocol::examples::tenant()).to_string();
        assert_eq!(
            &decode(&topic, &bytes, &Limits::default()).unwrap().message,
            msg
        );
        assert!(
            names.insert(*name, ()).is_none(),
            "duplicate example {name}"
        );
    }
}
