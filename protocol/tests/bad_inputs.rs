//! A table of bad inputs, each asserting the specific error it must produce: the
//! variant, the field it names and the stable reason code ingest files it under.

use protocol::validate::Problem;
use protocol::{decode, encode, examples, DecodeError, EncodeError, Limits, Message, TopicError};
use serde_json::{json, Value};

const HB_TOPIC: &str = "fleet/acme/dev-000123/heartbeat";
const EV_TOPIC: &str = "fleet/acme/dev-000123/event";
const CMD_TOPIC: &str = "fleet/acme/dev-000123/cmd";

fn example_json(name: &str) -> Value {
    let (_, msg) = examples::all()
        .into_iter()
        .find(|(n, _)| *n == name)
        .expect("example exists");
    serde_json::from_slice(&msg.encode(&Limits::default()).unwrap()).unwrap()
}

fn heartbeat() -> Value {
    example_json("heartbeat")
}

fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = new;
    v
}

/// Adds a key under an object (`pointer` names the new key).
fn with_new(mut v: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent}"))
        .insert(key.to_owned(), new);
    v
}

fn without(mut v: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key)
        .expect("field present");
    v
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn reject(topic: &str, payload: &[u8]) -> DecodeError {
    match decode(topic, payload, &Limits::default()) {
        Ok(m) => panic!("accepted {}: {m:?}", String::from_utf8_lossy(payload)),
        Err(e) => e,
    }
}

/// Asserts a field error at `field` whose problem matches, and the reason code.
#[track_caller]
fn assert_field(e: DecodeError, field: &str, reason: &str, check: impl Fn(&Problem) -> bool) {
    match &e {
        DecodeError::Field(f) => {
            assert_eq!(f.field, field, "wrong field in {e}");
            assert!(check(&f.problem), "unexpected problem in {e}");
        }
        other => panic!("expected a field error at {field}, got {other:?}"),
    }
    assert_eq!(e.reason(), reason, "reason code of {e}");
}

#[test]
fn the_valid_example_is_accepted() {
    assert!(decode(HB_TOPIC, &bytes(&heartbeat()), &Limits::default()).is_ok());
}

#[test]
fn truncated_json() {
    let full = bytes(&heartbeat());
    let e = reject(HB_TOPIC, &full[..full.len() / 2]);
    assert!(matches!(e, DecodeError::Truncated(_)), "{e:?}");
    assert_eq!(e.reason(), "truncated");
    assert!(matches!(reject(HB_TOPIC, b""), DecodeError::Truncated(_)));
}

#[test]
fn not_json_at_all() {
    let e = reject(HB_TOPIC, b"battery=41;temp=35");
    assert!(matches!(e, DecodeError::Syntax { .. }), "{e:?}");
    assert_eq!(e.reason(), "bad_json");
}

#[test]
fn not_utf8() {
    let mut p = bytes(&heartbeat());
    let at = p.windows(10).position(|w| w == b"dev-000123").unwrap();
    p[at] = 0xff;
    assert!(matches!(reject(HB_TOPIC, &p), DecodeError::Syntax { .. }));
}

#[test]
fn trailing_garbage_after_the_document() {
    let mut p = bytes(&heartbeat());
    p.extend_from_slice(b" {}");
    let e = reject(HB_TOPIC, &p);
    assert!(
        matches!(e, DecodeError::Syntax { ref message, .. } if message.contains("trailing")),
        "{e:?}"
    );
}

#[test]
fn json_array_instead_of_object() {
    for payload in [&b"[1,2,3]"[..], b" \n[", b"42", b"\"heartbeat\"", b"null"] {
        let e = reject(HB_TOPIC, payload);
        assert_field(e, ".", "wrong_type", |p| matches!(p, Problem::WrongType(_)));
    }
    // The fields in order, as an array: serde's structs would take it; we do not.
    let hb = heartbeat();
    let in_order = json!([
        hb["schema"],
        hb["device_id"],
        hb["seq"],
        hb["boot_id"],
        hb["ts_ms"],
        false,
        hb["body"]
    ]);
    let e = reject(HB_TOPIC, &bytes(&in_order));
    assert_field(
        e,
        ".",
        "wrong_type",
        |p| matches!(p, Problem::WrongType(m) if m.contains("object")),
    );
}

#[test]
fn wrong_type_names_the_field() {
    let e = reject(HB_TOPIC, &bytes(&with(heartbeat(), "/seq", json!("1042"))));
    assert_field(
        e,
        "seq",
        "wrong_type",
        |p| matches!(p, Problem::WrongType(m) if m.contains("string")),
    );
    let e = reject(
        HB_TOPIC,
        &bytes(&with(heartbeat(), "/body/battery/voltage_v", json!(true))),
    );
    assert_field(e, "body.battery.voltage_v", "wrong_type", |p| {
        matches!(p, Problem::WrongType(_))
    });
}

#[test]
fn missing_required_fields_name_their_full_path() {
    let e = reject(HB_TOPIC, &bytes(&without(heartbeat(), "/seq")));
    assert_field(e, "seq", "missing_field", |p| *p == Problem::Missing);
    let e = reject(HB_TOPIC, &bytes(&without(heartbeat(), "/body/interval_s")));
    assert_field(e, "body.interval_s", "missing_field", |p| {
        *p == Problem::Missing
    });
    let e = reject(
        HB_TOPIC,
        &bytes(&without(heartbeat(), "/body/battery/soc_min_pct")),
    );
    assert_field(e, "body.battery.soc_min_pct", "missing_field", |p| {
        *p == Problem::Missing
    });
}

#[test]
fn optional_sections_may_be_absent() {
    let v = without(
        without(without(heartbeat(), "/body/battery"), "/body/thermal"),
        "/body/features",
    );
    assert!(decode(HB_TOPIC, &bytes(&v), &Limits::default()).is_ok());
}

#[test]
fn unknown_extra_fields_are_tolerated() {
    let mut v = heartbeat();
    v["firmware_build_note"] = json!("added in a newer agent");
    v["body"]["battery"]["cell_count"] = json!(2);
    assert!(decode(HB_TOPIC, &bytes(&v), &Limits::default()).is_ok());
}

#[test]
fn out_of_range_values() {
    let cases = [
        (
            "/body/battery/soc_end_pct",
            json!(101.0),
            "body.battery.soc_end_pct",
        ),
        (
            "/body/battery/soc_start_pct",
            json!(-0.5),
            "body.battery.soc_start_pct",
        ),
        (
            "/body/battery/voltage_v",
            json!(48.0),
            "body.battery.voltage_v",
        ),
        (
            "/body/battery/soh_pct",
            json!(151.0),
            "body.battery.soh_pct",
        ),
        ("/body/thermal/max_c", json!(300.0), "body.thermal.max_c"),
        (
            "/body/connectivity/rssi_dbm",
            json!(10),
            "body.connectivity.rssi_dbm",
        ),
        ("/body/interval_s", json!(0), "body.interval_s"),
        ("/body/crashes", json!(1_000_000), "body.crashes"),
    ];
    for (pointer, value, field) in cases {
        let e = reject(HB_TOPIC, &bytes(&with(heartbeat(), pointer, value.clone())));
        assert_field(e, field, "out_of_range", |p| {
            matches!(p, Problem::OutOfRange { .. })
        });
    }
}

#[test]
fn negative_number_for_an_unsigned_field() {
    let e = reject(
        HB_TOPIC,
        &bytes(&with(heartbeat(), "/body/crashes", json!(-1))),
    );
    assert_field(
        e,
        "body.crashes",
        "invalid_value",
        |p| matches!(p, Problem::Invalid(m) if m.contains("-1")),
    );
}

#[test]
fn non_finite_numbers_are_rejected_on_the_wire() {
    // JSON has no NaN or infinity; devices that print them produce invalid JSON, and
    // a number too large for any float is rejected as well.
    for bad in ["NaN", "Infinity", "-Infinity", "1e999"] {
        let text = bytes(&heartbeat());
        let text = String::from_utf8(text)
            .unwrap()
            .replace("\"voltage_v\":3.62", &format!("\"voltage_v\":{bad}"));
        let e = reject(HB_TOPIC, text.as_bytes());
        assert!(
            matches!(&e, DecodeError::Syntax { at, .. } if at == "body.battery.voltage_v"),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn non_finite_numbers_are_refused_when_encoding() {
    let mut hb = examples::heartbeat();
    hb.body.battery.as_mut().unwrap().voltage_v = f32::NAN;
    match encode(&hb) {
        Err(EncodeError::Field(f)) => {
            assert_eq!(f.field, "body.battery.voltage_v");
            assert_eq!(f.problem, Problem::NotFinite);
        }
        other => panic!("NaN must not be encoded (serde_json would write null): {other:?}"),
    }
}

#[test]
fn oversized_payload() {
    let mut v = heartbeat();
    v["padding"] = json!("x".repeat(20_000));
    let p = bytes(&v);
    let e = reject(HB_TOPIC, &p);
    assert_eq!(
        e,
        DecodeError::TooLarge {
            size: p.len(),
            limit: 16 * 1024
        }
    );
    assert_eq!(e.reason(), "too_large");
    // The limit is configurable.
    let small = Limits {
        max_payload_bytes: 100,
        ..Limits::default()
    };
    assert!(matches!(
        decode(HB_TOPIC, &bytes(&heartbeat()), &small),
        Err(DecodeError::TooLarge { limit: 100, .. })
    ));
}

#[test]
fn unknown_schema_version() {
    let e = reject(HB_TOPIC, &bytes(&with(heartbeat(), "/schema", json!(3))));
    assert_eq!(e, DecodeError::UnsupportedSchema { found: 3 });
    assert_eq!(e.reason(), "unsupported_schema");
    // A future version whose shape differs is still reported as a version problem,
    // not as whichever field happens to be missing.
    let v2 = without(with(heartbeat(), "/schema", json!(7)), "/body/interval_s");
    assert_eq!(
        reject(HB_TOPIC, &bytes(&v2)),
        DecodeError::UnsupportedSchema { found: 7 }
    );
    let e = reject(HB_TOPIC, &bytes(&without(heartbeat(), "/schema")));
    assert_field(e, "schema", "missing_field", |p| *p == Problem::Missing);
}

#[test]
fn epochs_belong_to_schema_2_and_schema_1_still_reads() {
    // Schema 2 needs its epoch; 0 is the "none" of schema 1, not an epoch.
    let e = reject(HB_TOPIC, &bytes(&without(heartbeat(), "/epoch")));
    assert_field(
        e,
        "epoch",
        "invalid_value",
        |p| matches!(p, Problem::Inconsistent(w) if w.contains("non-zero epoch")),
    );
    let e = reject(HB_TOPIC, &bytes(&with(heartbeat(), "/epoch", json!(0))));
    assert_field(e, "epoch", "invalid_value", |p| {
        matches!(p, Problem::Inconsistent(_))
    });
    let e = reject(
        HB_TOPIC,
        &bytes(&with(heartbeat(), "/epoch", json!(4_294_967_296u64))),
    );
    assert_eq!(e.reason(), "invalid_value", "{e}");
    // A schema-1 device sends no epoch and is read as before; one that sends an epoch
    // under schema 1 is told to declare schema 2.
    let v1 = without(with(heartbeat(), "/schema", json!(1)), "/epoch");
    let d = decode(HB_TOPIC, &bytes(&v1), &Limits::default()).expect("schema 1 reads");
    match d.message {
        Message::Heartbeat(h) => assert!(h.epoch.is_none() && h.schema == 1),
        other => panic!("{other:?}"),
    }
    let e = reject(HB_TOPIC, &bytes(&with(heartbeat(), "/schema", json!(1))));
    assert_field(
        e,
        "epoch",
        "invalid_value",
        |p| matches!(p, Problem::Inconsistent(w) if w.contains("declare schema 2")),
    );
}

#[test]
fn a_withdraw_is_schema_2() {
    let topic = "fleet/acme/dev-000123/cmd";
    let withdraw = serde_json::to_value(protocol::examples::withdraw_command()).unwrap();
    assert!(decode(topic, &bytes(&withdraw), &Limits::default()).is_ok());
    let e = reject(topic, &bytes(&with(withdraw, "/schema", json!(1))));
    assert_field(e, "body.withdraw", "invalid_value", |p| {
        matches!(p, Problem::Inconsistent(_))
    });
}

#[test]
fn topic_and_payload_naming_different_devices() {
    let e = reject("fleet/acme/dev-999/heartbeat", &bytes(&heartbeat()));
    assert_eq!(
        e,
        DecodeError::DeviceMismatch {
            topic: "dev-999".parse().unwrap(),
            payload: "dev-000123".parse().unwrap()
        }
    );
    assert_eq!(e.reason(), "device_mismatch");
}

#[test]
fn bad_device_id_in_payload() {
    let e = reject(
        HB_TOPIC,
        &bytes(&with(heartbeat(), "/device_id", json!("dev/000123"))),
    );
    assert_field(
        e,
        "device_id",
        "invalid_value",
        |p| matches!(p, Problem::Invalid(m) if m.contains("'/'")),
    );
    let e = reject(HB_TOPIC, &bytes(&with(heartbeat(), "/boot_id", json!(""))));
    assert_field(
        e,
        "boot_id",
        "invalid_value",
        |p| matches!(p, Problem::Invalid(m) if m.contains("empty")),
    );
}

#[test]
fn bad_topics() {
    let p = bytes(&heartbeat());
    assert_eq!(
        reject("devices/acme/dev-000123/heartbeat", &p),
        DecodeError::Topic(TopicError::WrongRoot)
    );
    assert_eq!(
        reject("fleet/acme/dev-000123/metrics", &p),
        DecodeError::Topic(TopicError::UnknownChannel("metrics".into()))
    );
    assert_eq!(reject("fleet/acme/dev-000123", &p).reason(), "bad_topic");
}

#[test]
fn absurd_timestamps() {
    for ts in [json!(0), json!(1_000_000_000), json!(5_000_000_000_000u64)] {
        let e = reject(HB_TOPIC, &bytes(&with(heartbeat(), "/ts_ms", ts)));
        assert_field(e, "ts_ms", "out_of_range", |p| {
            matches!(p, Problem::TimestampOutOfRange { .. })
        });
    }
    // Seconds instead of milliseconds is the classic mistake.
    let e = reject(
        HB_TOPIC,
        &bytes(&with(heartbeat(), "/ts_ms", json!(1_795_338_000u64))),
    );
    assert_eq!(e.reason(), "out_of_range");
}

#[test]
fn inconsistent_fields() {
    let e = reject(
        HB_TOPIC,
        &bytes(&with(heartbeat(), "/body/operational_s", json!(4000))),
    );
    assert_field(e, "body.operational_s", "invalid_value", |p| {
        matches!(p, Problem::Inconsistent(_))
    });
    let e = reject(
        HB_TOPIC,
        &bytes(&with(heartbeat(), "/body/battery/soc_min_pct", json!(50.0))),
    );
    assert_field(e, "body.battery.soc_min_pct", "invalid_value", |p| {
        matches!(p, Problem::Inconsistent(_))
    });
    let e = reject(
        HB_TOPIC,
        &bytes(&with(heartbeat(), "/body/thermal/mean_c", json!(20.0))),
    );
    assert_field(e, "body.thermal.mean_c", "invalid_value", |p| {
        matches!(p, Problem::Inconsistent(_))
    });
    let drop = with(
        example_json("event-battery-drop"),
        "/body/battery_drop/to_pct",
        json!(40.0),
    );
    let e = reject(EV_TOPIC, &bytes(&drop));
    assert_field(e, "body.battery_drop.to_pct", "invalid_value", |p| {
        matches!(p, Problem::Inconsistent(_))
    });
}

#[test]
fn unknown_reboot_reason() {
    let v = with(
        example_json("event-reboot"),
        "/body/reboot/reason",
        json!("exploded"),
    );
    let e = reject(EV_TOPIC, &bytes(&v));
    assert_field(
        e,
        "body.reboot.reason",
        "invalid_value",
        |p| matches!(p, Problem::Invalid(m) if m.contains("unknown reboot reason `exploded`")),
    );
    let mut hb = heartbeat();
    hb["body"]["reboots"] = json!({"brown_out": 1, "gremlins": 2});
    let e = reject(HB_TOPIC, &bytes(&hb));
    assert!(
        matches!(&e, DecodeError::Field(f) if f.field.starts_with("body.reboots")),
        "{e:?}"
    );
}

#[test]
fn unknown_event_kind() {
    let mut v = example_json("event-crash");
    v["body"] = json!({"exploded": {"how": "loudly"}});
    let e = reject(EV_TOPIC, &bytes(&v));
    assert_field(
        e,
        "body",
        "invalid_value",
        |p| matches!(p, Problem::Invalid(m) if m.contains("unknown variant")),
    );
}

#[test]
fn text_fields_are_bounded_and_printable() {
    let v = with(
        example_json("event-crash"),
        "/body/crash/signature",
        json!("a\u{0}b"),
    );
    let e = reject(EV_TOPIC, &bytes(&v));
    assert_field(e, "body.crash.signature", "invalid_value", |p| {
        *p == Problem::ControlChar
    });
    let v = with(
        example_json("event-crash"),
        "/body/crash/signature",
        json!("s".repeat(300)),
    );
    let e = reject(EV_TOPIC, &bytes(&v));
    assert_field(e, "body.crash.signature", "invalid_value", |p| {
        matches!(p, Problem::TooLong { len: 300, .. })
    });
    let v = with(
        example_json("event-crash"),
        "/body/crash/signature",
        json!("   "),
    );
    let e = reject(EV_TOPIC, &bytes(&v));
    assert_field(e, "body.crash.signature", "invalid_value", |p| {
        *p == Problem::Empty
    });
}

#[test]
fn command_rules() {
    let offer = example_json("cmd-offer");
    let e = reject(
        CMD_TOPIC,
        &bytes(&without(offer.clone(), "/body/offer/quote")),
    );
    assert_field(e, "body.offer.quote", "invalid_value", |p| {
        matches!(p, Problem::Inconsistent(_))
    });
    let e = reject(
        CMD_TOPIC,
        &bytes(&with(
            offer.clone(),
            "/body/offer/quote/currency",
            json!("euro"),
        )),
    );
    assert_field(e, "body.offer.quote.currency", "invalid_value", |p| {
        matches!(p, Problem::Invalid(_))
    });
    let e = reject(
        CMD_TOPIC,
        &bytes(&with(offer, "/expires_ts_ms", json!(1_795_334_400_000u64))),
    );
    assert_field(e, "expires_ts_ms", "invalid_value", |p| {
        matches!(p, Problem::Inconsistent(_))
    });
    let mut cfg = example_json("cmd-config");
    cfg["body"] = json!({"config": {}});
    let e = reject(CMD_TOPIC, &bytes(&cfg));
    assert_field(e, "body.config", "invalid_value", |p| {
        matches!(p, Problem::Inconsistent(_))
    });
    let cfg = with(
        example_json("cmd-config"),
        "/body/config/heartbeat_interval_s",
        json!(5),
    );
    let e = reject(CMD_TOPIC, &bytes(&cfg));
    assert_field(e, "body.config.heartbeat_interval_s", "out_of_range", |p| {
        matches!(p, Problem::OutOfRange { .. })
    });
}

#[test]
fn seq_above_what_a_store_keeps_signed_is_out_of_range() {
    let top = with(heartbeat(), "/seq", json!(protocol::MAX_SEQ));
    assert!(decode(HB_TOPIC, &bytes(&top), &Limits::default()).is_ok());
    let over = with(heartbeat(), "/seq", json!(protocol::MAX_SEQ + 1));
    assert_field(
        reject(HB_TOPIC, &bytes(&over)),
        "seq",
        "out_of_range",
        |p| matches!(p, Problem::OutOfRange { .. }),
    );
    let max = with(heartbeat(), "/seq", json!(u64::MAX));
    assert_eq!(reject(HB_TOPIC, &bytes(&max)).reason(), "out_of_range");
}

#[test]
fn an_event_or_command_naming_two_kinds_is_an_invalid_value_not_bad_json() {
    let two = with_new(
        example_json("event-crash"),
        "/body/storage_error",
        json!({"code": "io_error"}),
    );
    assert_field(
        reject(EV_TOPIC, &bytes(&two)),
        "body",
        "invalid_value",
        |p| matches!(p, Problem::Invalid(m) if m.contains("exactly one key")),
    );
    let cmd = with_new(
        example_json("cmd-config"),
        "/body/diagnostic",
        json!({"checks": []}),
    );
    assert_eq!(reject(CMD_TOPIC, &bytes(&cmd)).reason(), "invalid_value");
}

#[test]
fn a_command_published_on_a_device_channel_is_read_as_that_channel() {
    // The payload is read as the topic says: a command lacks a heartbeat's fields.
    let e = reject(HB_TOPIC, &bytes(&example_json("cmd-config")));
    assert_eq!(e.reason(), "missing_field", "{e}");
}

#[test]
fn custom_metrics_are_typed_named_and_bounded() {
    let hb = |metrics: Value| with(heartbeat(), "/body/metrics", metrics);
    // Each type's rule, at the metric's own path.
    let cases = [
        (
            json!({"modem_resets": {"count": 100_001}}),
            "body.metrics.modem_resets",
            "out_of_range",
        ),
        (
            json!({"fan_rpm": {"gauge": 2e12}}),
            "body.metrics.fan_rpm",
            "out_of_range",
        ),
        (
            json!({"gps_on_s": {"timer": 3601}}),
            "body.metrics.gps_on_s",
            "invalid_value",
        ),
        (
            json!({"Fan RPM": {"gauge": 1.0}}),
            "body.metrics",
            "invalid_value",
        ),
        (
            json!({"9lives": {"count": 1}}),
            "body.metrics",
            "invalid_value",
        ),
        (json!({"": {"count": 1}}), "body.metrics", "invalid_value"),
        (
            json!({"a_name_that_is_far_too_long_for_it": {"count": 1}}),
            "body.metrics",
            "invalid_value",
        ),
    ];
    for (metrics, field, reason) in cases {
        let e = reject(HB_TOPIC, &bytes(&hb(metrics.clone())));
        assert_field(e, field, reason, |_| true);
    }
    // A bare number or an unknown type says what it expected.
    for bad in [json!({"fan_rpm": 3150}), json!({"fan_rpm": {"level": 3}})] {
        let e = reject(HB_TOPIC, &bytes(&hb(bad.clone())));
        assert!(e.to_string().contains("body.metrics"), "{bad}: {e}");
    }
    // At most 32 of them.
    let many: serde_json::Map<String, Value> = (0..33)
        .map(|i| (format!("m{i}"), json!({"count": 1})))
        .collect();
    let e = reject(HB_TOPIC, &bytes(&hb(Value::Object(many.clone()))));
    assert_field(
        e,
        "body.metrics",
        "invalid_value",
        |p| matches!(p, Problem::Invalid(m) if m.contains("at most 32")),
    );
    let mut fewer = many;
    fewer.remove("m0");
    let ok = decode(
        HB_TOPIC,
        &bytes(&hb(Value::Object(fewer))),
        &Limits::default(),
    )
    .unwrap();
    match ok.message {
        Message::Heartbeat(h) => assert_eq!(h.body.metrics.len(), 32),
        other => panic!("{other:?}"),
    }
    // The encoder refuses what the decoder would.
    let mut hb = examples::heartbeat();
    hb.body.metrics.insert(
        "fan_rpm".into(),
        protocol::heartbeat::Metric::Gauge(f64::NAN),
    );
    assert!(matches!(encode(&hb), Err(EncodeError::Field(f)) if f.field == "body.metrics.fan_rpm"));
}
