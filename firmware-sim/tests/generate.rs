//! `generate` end to end on a small fleet: every line decodes as the protocol says,
//! the ground truth matches the fleet, nothing arrives from a device after it failed,
//! and the same seed gives the same data.

use std::collections::BTreeMap;

use firmware_sim::dataset::{self, for_each_message, read_manifest, read_truth};
use firmware_sim::fleet::{FailureMode, Fate, Fleet, DAY_MS, DEFAULT_START};
use firmware_sim::offline::SimSettings;
use protocol::ids::TenantId;
use protocol::{Limits, Message, Timestamp};

fn fleet() -> Fleet {
    let mut f = Fleet::generate(42, 12, 12, DEFAULT_START);
    // Two known failures inside the window, one with precursors and one sudden.
    f.devices[0].fate = Some(Fate {
        mode: FailureMode::BatteryWear,
        failed_at: Timestamp(DEFAULT_START.0 + 8 * DAY_MS),
        onset: Timestamp(DEFAULT_START.0 + 2 * DAY_MS),
    });
    f.devices[0].sku = 0; // a phone: it has a battery to wear out
    f.devices[1].fate = Some(Fate {
        mode: FailureMode::Board,
        failed_at: Timestamp(DEFAULT_START.0 + 5 * DAY_MS),
        onset: Timestamp(DEFAULT_START.0 + 5 * DAY_MS),
    });
    for d in &mut f.devices[2..] {
        d.fate = None;
    }
    f
}

fn generate(dir: &std::path::Path) -> dataset::Summary {
    let tenant = TenantId::new("acme").unwrap();
    dataset::generate(
        &fleet(),
        42,
        &SimSettings::default(),
        &tenant,
        dir,
        2,
        &|_, _| {},
    )
    .unwrap()
}

#[test]
fn a_small_data_set_is_valid_complete_and_reproducible() {
    let a = tempfile::tempdir().unwrap();
    let summary = generate(a.path());
    let manifest = read_manifest(a.path()).unwrap();
    assert_eq!(
        (manifest.devices, manifest.days, manifest.shards.len()),
        (12, 12, 2)
    );

    let truth = read_truth(a.path()).unwrap();
    assert_eq!(truth.len(), 12);
    assert_eq!(truth[0].failure_mode, "battery_wear");
    assert_eq!(truth[0].failed_at_ms, Some(DEFAULT_START.0 + 8 * DAY_MS));
    assert_eq!(truth[1].failure_mode, "board");
    assert!(
        truth[1].failed_at.starts_with("2026-01-06T"),
        "{}",
        truth[1].failed_at
    );
    assert!(truth[2..]
        .iter()
        .all(|r| r.failure_mode.is_empty() && r.failed_at.is_empty()));

    let limits = Limits::default();
    let mut last_ts: BTreeMap<String, u64> = BTreeMap::new();
    let mut heartbeats: BTreeMap<String, usize> = BTreeMap::new();
    let mut lines = Vec::new();
    let n = for_each_message(a.path(), |topic, payload| {
        let m = protocol::decode(topic, payload, &limits)
            .unwrap_or_else(|e| panic!("{topic}: {e}"))
            .message;
        let device = m.device_id().to_string();
        let ts = match &m {
            Message::Heartbeat(h) => {
                *heartbeats.entry(device.clone()).or_default() += 1;
                h.ts_ms.0
            }
            Message::Event(e) => e.ts_ms.0,
            Message::State(s) => s.ts_ms.0,
            Message::Ack(a) => a.ts_ms.0,
            Message::Command(_) => panic!("devices do not publish commands"),
        };
        let e = last_ts.entry(device).or_default();
        *e = (*e).max(ts);
        lines.push((topic.to_owned(), payload.to_vec()));
    })
    .unwrap();
    assert_eq!(n, summary.messages);
    for row in &truth {
        if let Some(failed) = row.failed_at_ms {
            assert!(
                last_ts[&row.device_id] <= failed,
                "{} reported after failing",
                row.device_id
            );
        } else {
            // Twelve days of hourly heartbeats, less restarts and downtime.
            let hb = heartbeats[&row.device_id];
            assert!(
                (250..=290).contains(&hb),
                "{}: {hb} heartbeats",
                row.device_id
            );
        }
    }

    // The same seed, the same telemetry, byte for byte.
    let b = tempfile::tempdir().unwrap();
    generate(b.path());
    let mut again = Vec::new();
    for_each_message(b.path(), |t, p| again.push((t.to_owned(), p.to_vec()))).unwrap();
    assert!(lines == again, "a second run with the same seed differs");
}

#[test]
fn damaged_data_sets_are_errors_that_say_where() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let manifest = read_manifest(dir.path()).unwrap();

    // A telemetry line without its tab.
    let shard = dir.path().join(&manifest.shards[0]);
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&shard).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut gz, b"fleet/acme/dev-000000/heartbeat{}\n").unwrap();
    gz.finish().unwrap();
    let err = for_each_message(dir.path(), |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("without a tab"), "{err}");

    // A ground-truth row with a failure time that is not a number.
    let truth = dir.path().join(dataset::GROUND_TRUTH);
    let text = std::fs::read_to_string(&truth).unwrap();
    let broken = text.replacen(&format!(",{},", DEFAULT_START.0 + 8 * DAY_MS), ",soon,", 1);
    assert_ne!(broken, text);
    std::fs::write(&truth, broken).unwrap();
    let err = read_truth(dir.path()).unwrap_err();
    assert!(err.to_string().contains("failed_at_ms"), "{err}");

    // No manifest: not a data set.
    std::fs::remove_file(dir.path().join(dataset::MANIFEST)).unwrap();
    assert!(read_manifest(dir.path()).is_err());
}
