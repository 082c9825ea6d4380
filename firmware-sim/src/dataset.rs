//! The `generate` mode's writer; the format and its readers live in
//! `models::dataset`, where the trainer reads them.
//!
//! A data set is a directory:
//! - `telemetry-NNN.tsv.gz`: gzip'd lines of `topic<TAB>payload`, the payload exactly
//!   as it would be published (JSON never contains a raw tab or newline, so the split is
//!   unambiguous). Lines are grouped by device, in the order the device delivered them;
//!   decode each with `protocol::decode(topic, payload)`, the same path ingest uses.
//! - `ground_truth.csv`: one row per device (see [`TruthRow`]).
//! - `manifest.json`: the parameters that produced it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;
use protocol::ids::TenantId;
use protocol::Timestamp;

pub use models::dataset::{
    for_each_message, read_manifest, read_truth, Manifest, TruthRow, GROUND_TRUTH, MANIFEST,
};

use crate::fleet::{DeviceSpec, Fleet};
use crate::offline::{simulate, Outcome, SimSettings};

/// Figures from one `generate` run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Device-days simulated.
    pub device_days: f64,
    /// Messages written.
    pub messages: u64,
    /// Messages dropped by full spools.
    pub dropped: u64,
    /// Devices that failed.
    pub failed: usize,
    /// Wall time.
    pub elapsed: Duration,
}

fn rfc3339(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.0 as i64)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn truth_row(spec: &DeviceSpec, fleet: &Fleet, outcome: &Outcome) -> TruthRow {
    let sku = spec.sku();
    TruthRow {
        device_id: spec.id.to_string(),
        model: sku.model.to_owned(),
        device_class: format!("{:?}", sku.class).to_lowercase(),
        batch: spec.batch.id.clone(),
        firmware: spec
            .firmware_at(fleet.start, fleet.start)
            .version
            .to_owned(),
        firmware_final: outcome.final_firmware.to_owned(),
        purchased_at: rfc3339(spec.purchased),
        price_minor: sku.price_minor,
        currency: "EUR".to_owned(),
        expected_life_days: sku.expected_life_days,
        usage: format!("{:?}", spec.usage).to_lowercase(),
        failure_mode: spec
            .fate
            .as_ref()
            .map_or(String::new(), |f| f.mode.as_str().to_owned()),
        failed_at: spec
            .fate
            .as_ref()
            .map_or(String::new(), |f| rfc3339(f.failed_at)),
        failed_at_ms: spec.fate.as_ref().map(|f| f.failed_at.0),
        precursor_onset_ms: spec.fate.as_ref().map(|f| f.onset.0),
    }
}

/// Simulates `fleet` on `threads` threads and writes the data set to `out`.
/// `progress` is called about once a second with (devices done, devices in all).
pub fn generate(
    fleet: &Fleet,
    seed: u64,
    settings: &SimSettings,
    tenant: &TenantId,
    out: &Path,
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> io::Result<Summary> {
    let started = Instant::now();
    fs::create_dir_all(out)?;
    let threads = threads.clamp(1, fleet.devices.len().max(1));
    let chunk = fleet.devices.len().div_ceil(threads).max(1);
    let done = AtomicU64::new(0);
    let shards: Vec<PathBuf> = (0..threads)
        .map(|k| out.join(format!("telemetry-{k:03}.tsv.gz")))
        .collect();
    let results: Vec<io::Result<Vec<(TruthRow, Outcome)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = fleet
            .devices
            .chunks(chunk)
            .zip(&shards)
            .map(|(devices, shard)| {
                let done = &done;
                scope.spawn(move || -> io::Result<Vec<(TruthRow, Outcome)>> {
                    let file = BufWriter::with_capacity(1 << 20, File::create(shard)?);
                    let mut gz = GzEncoder::new(file, Compression::fast());
                    let mut rows = Vec::with_capacity(devices.len());
                    for spec in devices {
                        let mut sink = |topic: &str, payload: &[u8]| -> io::Result<()> {
                            gz.write_all(topic.as_bytes())?;
                            gz.write_all(b"\t")?;
                            gz.write_all(payload)?;
                            gz.write_all(b"\n")
                        };
                        let outcome = simulate(
                            spec.clone(),
                            fleet.start,
                            fleet.end(),
                            settings,
                            tenant,
                            &mut sink,
                        )?;
                        rows.push((truth_row(spec, fleet, &outcome), outcome));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    gz.finish()?.flush()?;
                    Ok(rows)
                })
            })
            .collect();
        // Report progress while the workers run.
        let total = fleet.devices.len();
        while handles.iter().any(|h| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(200));
            if started.elapsed().as_millis() % 1000 < 200 {
                progress(done.load(Ordering::Relaxed) as usize, total);
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    let mut summary = Summary::default();
    let mut csv = csv::Writer::from_path(out.join(GROUND_TRUTH)).map_err(io::Error::other)?;
    for rows in results {
        for (row, outcome) in rows? {
            summary.device_days += outcome.days;
            summary.messages += outcome.delivered;
            summary.dropped += outcome.dropped;
            summary.failed += usize::from(!row.failure_mode.is_empty());
            csv.serialize(&row).map_err(io::Error::other)?;
        }
    }
    csv.flush()?;
    let manifest = Manifest {
        format: 1,
        seed,
        devices: fleet.devices.len(),
        days: fleet.days,
        start_ms: fleet.start.0,
        tenant: tenant.to_string(),
        sample_interval_s: settings.agent.sample_interval_s,
        heartbeat_interval_s: settings.agent.heartbeat_interval_s,
        shards: shards
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
    };
    fs::write(
        out.join(MANIFEST),
        serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?,
    )?;
    summary.elapsed = started.elapsed();
    progress(fleet.devices.len(), fleet.devices.len());
    Ok(summary)
}

/// Writes a fleet's ground truth to `path`, as `generate` does, for a live run (the
/// final firmware column holds the firmware the device would run at the window's end).
pub fn write_fleet_truth(fleet: &Fleet, path: &Path) -> io::Result<()> {
    let mut csv = csv::Writer::from_path(path).map_err(io::Error::other)?;
    for spec in &fleet.devices {
        let end = spec.fate.as_ref().map_or(fleet.end(), |f| f.failed_at);
        let outcome = Outcome {
            delivered: 0,
            dropped: 0,
            final_firmware: spec.firmware_at(fleet.start, end).version,
            days: 0.0,
        };
        csv.serialize(truth_row(spec, fleet, &outcome))
            .map_err(io::Error::other)?;
    }
    csv.flush()
}
