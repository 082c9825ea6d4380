//! Simulated data sets on disk: the format `firmware-sim generate` writes and the
//! readers the trainer uses.
//!
//! A data set is a directory:
//! - `telemetry-NNN.tsv.gz`: gzip'd lines of `topic<TAB>payload`, the payload exactly
//!   as it would be published (JSON never contains a raw tab or newline, so the split is
//!   unambiguous). Lines are grouped by device, in the order the device delivered them;
//!   decode each with `protocol::decode(topic, payload)`, the same path ingest uses.
//! - `ground_truth.csv`: one row per device (see [`TruthRow`]).
//! - `manifest.json`: the parameters that produced it.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};

/// The name of the ground-truth file.
pub const GROUND_TRUTH: &str = "ground_truth.csv";
/// The name of the manifest.
pub const MANIFEST: &str = "manifest.json";

/// One row of `ground_truth.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthRow {
    /// The device.
    pub device_id: String,
    /// Its model (SKU).
    pub model: String,
    /// Its class.
    pub device_class: String,
    /// Its hardware batch.
    pub batch: String,
    /// Firmware at the start of the window.
    pub firmware: String,
    /// Firmware at the end of the window (or at failure).
    pub firmware_final: String,
    /// Purchase time, RFC 3339.
    pub purchased_at: String,
    /// Price, minor units.
    pub price_minor: u64,
    /// Currency of the price.
    pub currency: String,
    /// Expected life, days.
    pub expected_life_days: u32,
    /// Usage profile.
    pub usage: String,
    /// How it failed; empty when it did not.
    pub failure_mode: String,
    /// When it failed, RFC 3339; empty when it did not.
    pub failed_at: String,
    /// When it failed, ms since the epoch; empty when it did not.
    pub failed_at_ms: Option<u64>,
    /// When its precursors began, ms since the epoch; equal to `failed_at_ms` for a
    /// failure without warning; empty when it did not fail.
    pub precursor_onset_ms: Option<u64>,
}

/// The parameters of a data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of this directory layout.
    pub format: u32,
    /// The fleet seed.
    pub seed: u64,
    /// Devices simulated.
    pub devices: usize,
    /// Days simulated.
    pub days: u32,
    /// Start of the window, ms since the epoch.
    pub start_ms: u64,
    /// The tenant in the topics.
    pub tenant: String,
    /// Seconds between samples.
    pub sample_interval_s: u32,
    /// Seconds between heartbeats.
    pub heartbeat_interval_s: u32,
    /// Telemetry files.
    pub shards: Vec<String>,
}

/// Reads a data set's manifest.
pub fn read_manifest(dir: &Path) -> io::Result<Manifest> {
    serde_json::from_slice(&fs::read(dir.join(MANIFEST))?).map_err(io::Error::other)
}

/// Reads `ground_truth.csv`.
pub fn read_truth(dir: &Path) -> io::Result<Vec<TruthRow>> {
    let path = dir.join(GROUND_TRUTH);
    let file = File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    parse_truth(file, &path.display().to_string())
}

/// Parses ground-truth CSV from any reader; `name` says where it came from in errors.
pub fn parse_truth(input: impl io::Read, name: &str) -> io::Result<Vec<TruthRow>> {
    let bad = |line: u64, what: String| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{name}:{line}: {what}"))
    };
    let mut reader = csv::Reader::from_reader(input);
    let headers = reader.headers().map_err(io::Error::other)?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(io::Error::other)?;
        let line = record.position().map_or(0, |p| p.line());
        let row = record.deserialize(Some(&headers)).map_err(|e| {
            // Name the column, not just its index.
            let column = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => {
                    err.field().and_then(|i| headers.get(i as usize))
                }
                _ => None,
            }
            .unwrap_or("?");
            bad(line, format!("column {column}: {e}"))
        })?;
        rows.push(row);
    }
    Ok(rows)
}

/// Calls `each(topic, payload)` for every telemetry line of a data set, in file order.
pub fn for_each_message(dir: &Path, mut each: impl FnMut(&str, &[u8])) -> io::Result<u64> {
    let manifest = read_manifest(dir)?;
    let mut n = 0;
    for shard in &manifest.shards {
        n += for_each_message_in(dir, shard, &mut each)?;
    }
    Ok(n)
}

/// Calls `each(topic, payload)` for every line of one telemetry file of a data set. A
/// device's lines are all in one file, so files can be read in parallel.
pub fn for_each_message_in(
    dir: &Path,
    shard: &str,
    mut each: impl FnMut(&str, &[u8]),
) -> io::Result<u64> {
    let path = dir.join(shard);
    let file = File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let reader = BufReader::new(MultiGzDecoder::new(file));
    let mut n = 0;
    for line in reader.split(b'\n') {
        let line = line?;
        let tab = line.iter().position(|b| *b == b'\t').ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{shard}: line {}: a line without a tab", n + 1),
            )
        })?;
        let topic = std::str::from_utf8(&line[..tab])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        each(topic, &line[tab + 1..]);
        n += 1;
    }
    Ok(n)
}
