//! Labelled data sets: one row per device and day, its features and whether the device
//! fails within the horizon, built from a simulated fleet or read from an operator's CSV.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::Array2;
use protocol::{Limits, Message, Timestamp};

use crate::dataset::{self, TruthRow};
use crate::features::DAY_MS;
use crate::history::{DeviceHistory, FeatureVector};
use crate::schema::{FEATURES, FEATURE_COUNT};

/// What went wrong reading a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A CSV row or header is not usable.
    #[error("{path}:{line}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The data is readable but not a usable training set.
    #[error("{0}")]
    Invalid(String),
}

/// How rows are labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelConfig {
    /// A row is positive when the device fails within this many days after it.
    pub horizon_days: u32,
    /// Rows start once the window has run this many days, so features have history.
    pub min_history_days: u32,
}

impl Default for LabelConfig {
    fn default() -> Self {
        LabelConfig {
            horizon_days: 14,
            min_history_days: 7,
        }
    }
}

/// What is known about one device's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceOutcome {
    /// The device id.
    pub id: String,
    /// When it failed, if it did and the time is known.
    pub failed_at_ms: Option<u64>,
    /// How it failed, if it did and the mode is known.
    pub failure_mode: Option<String>,
    /// True when the device failed (also when the time is unknown).
    pub failed: bool,
    /// Which source of a merged set it comes from (0 unless merged): each source's rows
    /// are split on its own time span.
    pub origin: u32,
}

/// Rows of features with labels, the devices they belong to and their times.
#[derive(Debug, Clone)]
pub struct LabelledSet {
    /// Features, one row per device and time, columns in schema order.
    pub x: Array2<f64>,
    /// True when the device fails within the horizon after the row's time.
    pub y: Vec<bool>,
    /// Index into `devices` for each row.
    pub device: Vec<u32>,
    /// Time of each row, ms since the epoch.
    pub t_ms: Vec<u64>,
    /// How many rows of the population each row stands for (1 unless the source says:
    /// a random inspection sample's rows weigh the inverse of the share drawn).
    pub weight: Vec<f64>,
    /// The devices, sorted by id.
    pub devices: Vec<DeviceOutcome>,
    /// The label horizon, days.
    pub horizon_days: u32,
    /// Where the rows came from, for reports.
    pub source: String,
    /// Schema features the source did not provide (filled with their missing value).
    pub absent_features: Vec<String>,
}

impl LabelledSet {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Number of positive rows.
    pub fn positives(&self) -> usize {
        self.y.iter().filter(|y| **y).count()
    }

    /// The rows at `rows`, keeping the device table whole.
    pub fn subset(&self, rows: &[usize]) -> LabelledSet {
        LabelledSet {
            x: self.x.select(ndarray::Axis(0), rows),
            y: rows.iter().map(|&r| self.y[r]).collect(),
            device: rows.iter().map(|&r| self.device[r]).collect(),
            t_ms: rows.iter().map(|&r| self.t_ms[r]).collect(),
            weight: rows.iter().map(|&r| self.weight[r]).collect(),
            devices: self.devices.clone(),
            horizon_days: self.horizon_days,
            source: self.source.clone(),
            absent_features: self.absent_features.clone(),
        }
    }

    /// True when some row weighs other than 1.
    pub fn is_weighted(&self) -> bool {
        self.weight.iter().any(|w| *w != 1.0)
    }

    /// This set and `other` as one: rows of both, each source's devices apart (an id
    /// both use is suffixed `@N` in `other`, N its origin) and split on its own time
    /// span. Both must have the same horizon.
    pub fn merge(self, other: LabelledSet) -> Result<LabelledSet, DataError> {
        if self.horizon_days != other.horizon_days {
            return Err(DataError::Invalid(format!(
                "{} labels a {}-day horizon and {} a {}-day one: merged rows must mean the same",
                self.source, self.horizon_days, other.source, other.horizon_days
            )));
        }
        let origin = self.devices.iter().map(|d| d.origin).max().unwrap_or(0) + 1;
        let taken: HashSet<&str> = self.devices.iter().map(|d| d.id.as_str()).collect();
        let mut devices = self.devices.clone();
        devices.extend(other.devices.iter().map(|d| DeviceOutcome {
            id: if taken.contains(d.id.as_str()) {
                format!("{}@{origin}", d.id)
            } else {
                d.id.clone()
            },
            origin: origin + d.origin,
            ..d.clone()
        }));
        let offset = self.devices.len() as u32;
        let mut order: Vec<usize> = (0..devices.len()).collect();
        order.sort_by(|a, b| devices[*a].id.cmp(&devices[*b].id));
        let mut new_index = vec![0u32; devices.len()];
        for (new, old) in order.iter().enumerate() {
            new_index[*old] = new as u32;
        }
        let devices = order.iter().map(|i| devices[*i].clone()).collect();
        let device = self
            .device
            .iter()
            .map(|d| new_index[*d as usize])
            .chain(
                other
                    .device
                    .iter()
                    .map(|d| new_index[(d + offset) as usize]),
            )
            .collect();
        let x = ndarray::concatenate(ndarray::Axis(0), &[self.x.view(), other.x.view()])
            .expect("both sets have the schema's columns");
        let absent_features = self
            .absent_features
            .iter()
            .filter(|f| other.absent_features.contains(f))
            .cloned()
            .collect();
        Ok(LabelledSet {
            x,
            y: self.y.into_iter().chain(other.y).collect(),
            device,
            t_ms: self.t_ms.into_iter().chain(other.t_ms).collect(),
            weight: self.weight.into_iter().chain(other.weight).collect(),
            devices,
            horizon_days: self.horizon_days,
            source: format!("{} + {}", self.source, other.source),
            absent_features,
        })
    }

    /// Row `i` as a feature vector.
    pub fn row(&self, i: usize) -> FeatureVector {
        let mut v = [0.0; FEATURE_COUNT];
        for (j, x) in self.x.row(i).iter().enumerate() {
            v[j] = *x;
        }
        FeatureVector(v)
    }

    fn from_parts(
        rows: Vec<(u32, u64, FeatureVector, bool, f64)>,
        devices: Vec<DeviceOutcome>,
        horizon_days: u32,
        source: String,
        absent_features: Vec<String>,
    ) -> Result<Self, DataError> {
        if rows.is_empty() {
            return Err(DataError::Invalid(format!("{source}: no labelled rows")));
        }
        let mut x = Array2::zeros((rows.len(), FEATURE_COUNT));
        let (mut y, mut device, mut t_ms) = (Vec::new(), Vec::new(), Vec::new());
        let mut weight = Vec::with_capacity(rows.len());
        for (i, (d, t, v, label, w)) in rows.into_iter().enumerate() {
            for (j, value) in v.0.iter().enumerate() {
                x[(i, j)] = *value;
            }
            y.push(label);
            device.push(d);
            t_ms.push(t);
            weight.push(w);
        }
        Ok(LabelledSet {
            x,
            y,
            device,
            t_ms,
            weight,
            devices,
            horizon_days,
            source,
            absent_features,
        })
    }
}

/// Builds the labelled rows of a `firmware-sim generate` directory: each device's
/// telemetry is replayed in time order and its features taken at the end of every day.
/// A day is a row when the device is still alive at its end and its label is known: it
/// fails within the horizon, or the window runs at least the horizon past it. Nothing
/// after a failure is used. `progress` is called with the number of devices done.
pub fn from_simulation(
    dir: &Path,
    config: &LabelConfig,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<LabelledSet, DataError> {
    let io = |path: PathBuf| move |source| DataError::Io { path, source };
    let manifest = dataset::read_manifest(dir).map_err(io(dir.join(dataset::MANIFEST)))?;
    let truth = dataset::read_truth(dir).map_err(io(dir.join(dataset::GROUND_TRUTH)))?;
    let truth: HashMap<&str, &TruthRow> = truth.iter().map(|t| (t.device_id.as_str(), t)).collect();
    let window = Window {
        start_ms: manifest.start_ms,
        days: manifest.days,
        config: config.clone(),
    };
    let done = Mutex::new(0usize);
    let results: Vec<Result<Vec<DeviceRows>, DataError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = manifest
            .shards
            .iter()
            .map(|shard| {
                let (truth, window, done) = (&truth, &window, &done);
                scope.spawn(move || {
                    read_shard(dir, shard, truth, window, &|| {
                        let mut n = done.lock().unwrap_or_else(|e| e.into_inner());
                        *n += 1;
                        progress(*n);
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut per_device = Vec::new();
    for r in results {
        per_device.extend(r?);
    }
    per_device.sort_by(|a, b| a.outcome.id.cmp(&b.outcome.id));
    let mut rows = Vec::new();
    let mut devices = Vec::new();
    for (i, d) in per_device.into_iter().enumerate() {
        let i = u32::try_from(i).map_err(|_| DataError::Invalid("too many devices".into()))?;
        rows.extend(d.rows.into_iter().map(|(t, v, y)| (i, t, v, y, 1.0)));
        devices.push(d.outcome);
    }
    LabelledSet::from_parts(
        rows,
        devices,
        config.horizon_days,
        dir.display().to_string(),
        Vec::new(),
    )
}

struct Window {
    start_ms: u64,
    days: u32,
    config: LabelConfig,
}

struct DeviceRows {
    outcome: DeviceOutcome,
    rows: Vec<(u64, FeatureVector, bool)>,
}

fn read_shard(
    dir: &Path,
    shard: &str,
    truth: &HashMap<&str, &TruthRow>,
    window: &Window,
    tick: &dyn Fn(),
) -> Result<Vec<DeviceRows>, DataError> {
    let limits = Limits::default();
    let mut out = Vec::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<(String, Vec<Message>)> = None;
    let mut error = None;
    let finish = |id: String, messages: Vec<Message>, out: &mut Vec<DeviceRows>| {
        let t = truth.get(id.as_str()).copied();
        out.push(device_rows(id, messages, t, window));
        tick();
    };
    dataset::for_each_message_in(dir, shard, |topic, payload| {
        if error.is_some() {
            return;
        }
        // Lines that do not decode are what ingest would dead-letter: skipped here too.
        let Ok(decoded) = protocol::decode(topic, payload, &limits) else {
            return;
        };
        let id = decoded.message.device_id().as_str();
        match &mut current {
            Some((cur, messages)) if cur == id => messages.push(decoded.message),
            _ => {
                if finished.contains(id) {
                    error = Some(DataError::Invalid(format!(
                        "{shard}: lines of device {id} are not together; the reader needs them grouped by device"
                    )));
                    return;
                }
                if let Some((prev, messages)) = current.take() {
                    finished.insert(prev.clone());
                    finish(prev, messages, &mut out);
                }
                current = Some((id.to_string(), vec![decoded.message]));
            }
        }
    })
    .map_err(|source| DataError::Io {
        path: dir.join(shard),
        source,
    })?;
    if let Some(e) = error {
        return Err(e);
    }
    if let Some((prev, messages)) = current.take() {
        finish(prev, messages, &mut out);
    }
    Ok(out)
}

fn device_rows(
    id: String,
    mut messages: Vec<Message>,
    truth: Option<&TruthRow>,
    window: &Window,
) -> DeviceRows {
    // At-least-once delivery may repeat a message: keep the first of each seq.
    let mut seen = HashSet::new();
    messages.retain(|m| m.seq().is_none_or(|s| seen.insert(s)));
    messages.sort_by_key(ts_of);
    let failed_at = truth.and_then(|t| t.failed_at_ms);
    let purchased = truth
        .and_then(|t| parse_time(&t.purchased_at))
        .map(Timestamp);
    let horizon = u64::from(window.config.horizon_days) * DAY_MS;
    let end = window.start_ms + u64::from(window.days) * DAY_MS;
    let mut history = DeviceHistory::new(purchased);
    let mut next = 0;
    let mut rows = Vec::new();
    for day in window.config.min_history_days.max(1)..=window.days {
        let t = window.start_ms + u64::from(day) * DAY_MS;
        if failed_at.is_some_and(|f| f <= t) {
            break;
        }
        while next < messages.len() && ts_of(&messages[next]) <= t {
            history.observe(&messages[next]);
            next += 1;
        }
        let label_known = failed_at.is_some() || t + horizon <= end;
        if !label_known || history.newest().is_none() {
            continue;
        }
        let label = failed_at.is_some_and(|f| f - t <= horizon);
        rows.push((t, history.features(Timestamp(t)), label));
    }
    DeviceRows {
        outcome: DeviceOutcome {
            id,
            failed_at_ms: failed_at,
            failure_mode: truth
                .map(|t| t.failure_mode.clone())
                .filter(|m| !m.is_empty()),
            failed: failed_at.is_some(),
            origin: 0,
        },
        rows,
    }
}

fn ts_of(m: &Message) -> u64 {
    match m {
        Message::Heartbeat(e) => e.ts_ms.0,
        Message::Event(e) => e.ts_ms.0,
        Message::State(e) => e.ts_ms.0,
        Message::Ack(e) => e.ts_ms.0,
        Message::Command(c) => c.ts_ms.0,
    }
}

/// Parses a time as ms since the epoch or RFC 3339.
pub fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return Some(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
}

/// What an operator's time column counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum TimeUnit {
    /// A moment: ms since 1970, or RFC 3339.
    #[default]
    Epoch,
    /// A counter of milliseconds from any origin.
    Ms,
    /// A counter of seconds.
    S,
    /// A counter of minutes.
    Min,
    /// A counter of hours.
    H,
    /// A counter of days.
    D,
    /// A counter of anything else (cycles, flights, charge cycles): one count stands
    /// for one day of the horizon, so `--horizon 30` means 30 counts.
    Count,
}

impl TimeUnit {
    /// Milliseconds one unit stands for (a count stands for a day); `None` for moments.
    pub fn ms_per_unit(self) -> Option<f64> {
        Some(match self {
            TimeUnit::Epoch => return None,
            TimeUnit::Ms => 1.0,
            TimeUnit::S => 1_000.0,
            TimeUnit::Min => 60_000.0,
            TimeUnit::H => 3_600_000.0,
            TimeUnit::D | TimeUnit::Count => DAY_MS as f64,
        })
    }

    /// Reads a time cell in this unit as ms.
    pub fn parse(self, s: &str) -> Option<u64> {
        match self.ms_per_unit() {
            None => parse_time(s),
            Some(ms) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| (v * ms).round() as u64),
        }
    }

    /// A horizon of `n` of these units in whole days, or why it is not one.
    pub fn horizon_days(self, n: f64) -> Result<u32, DataError> {
        let ms = self.ms_per_unit().unwrap_or(DAY_MS as f64);
        let days = n * ms / DAY_MS as f64;
        if !(days >= 1.0 && days.fract().abs() < 1e-9 && days <= 10_000.0) {
            return Err(DataError::Invalid(format!(
                "--horizon {n} in this time unit is {days} days: the horizon is a whole number of days, at least one"
            )));
        }
        Ok(days.round() as u32)
    }
}

/// The columns of an operator's CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvColumns {
    /// The device id column.
    pub id: String,
    /// The row time column, read as [`CsvColumns::time_unit`] says.
    pub time: String,
    /// What the time column counts.
    pub time_unit: TimeUnit,
    /// The field delimiter (`,` unless told).
    pub delimiter: u8,
    /// The label column: 1/0, true/false or yes/no.
    pub label: String,
    /// Schema feature → CSV column, for each feature the file provides. Features not
    /// listed take their missing value.
    pub features: Vec<(String, String)>,
    /// An optional column with the device's failure time (for lead times).
    pub failed_at: Option<String>,
    /// An optional column with the failure mode (for per-mode recall).
    pub failure_mode: Option<String>,
    /// An optional column with each row's weight: how many rows of the population it
    /// stands for (a random inspection sample's rows weigh 1 / the share drawn).
    pub weight: Option<String>,
}

impl CsvColumns {
    /// Columns named like the schema's features, with the given id, time and label
    /// columns.
    pub fn schema_named(id: &str, time: &str, label: &str) -> Self {
        CsvColumns {
            id: id.into(),
            time: time.into(),
            time_unit: TimeUnit::Epoch,
            delimiter: b',',
            label: label.into(),
            features: FEATURES
                .iter()
                .map(|f| (f.name.to_string(), f.name.to_string()))
                .collect(),
            failed_at: None,
            failure_mode: None,
            weight: None,
        }
    }

    /// Parses a feature mapping list: `name` (same column name) or `name=column`, comma
    /// separated. Every name must be a schema feature.
    pub fn parse_features(list: &str) -> Result<Vec<(String, String)>, DataError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                let (name, column) = item.split_once('=').unwrap_or((item, item));
                if !FEATURES.iter().any(|f| f.name == name) {
                    return Err(DataError::Invalid(format!(
                        "`{name}` is not a feature of the schema; known: {}",
                        FEATURES.map(|f| f.name).join(", ")
                    )));
                }
                Ok((name.to_string(), column.to_string()))
            })
            .collect()
    }
}

/// Reads an operator's CSV: one row per device and time with features and a label.
pub fn from_csv(
    path: &Path,
    columns: &CsvColumns,
    horizon_days: u32,
) -> Result<LabelledSet, DataError> {
    let csv_err = |line: u64, message: String| DataError::Csv {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(columns.delimiter)
        .from_path(path)
        .map_err(|e| DataError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    let headers = reader
        .headers()
        .map_err(|e| csv_err(1, e.to_string()))?
        .clone();
    let find = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            // One column holding the delimiters of another is a file split on the
            // wrong character.
            let hint = match (headers.len(), headers.get(0)) {
                (1, Some(h)) if h.contains([';', '\t', '|']) => {
                    "; the header is one column: give the file's delimiter with --delimiter"
                }
                _ => "",
            };
            csv_err(
                1,
                format!(
                    "no column `{name}`; the header has: {}{hint}",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    };
    let id_col = find(&columns.id)?;
    let time_col = find(&columns.time)?;
    let label_col = find(&columns.label)?;
    let failed_col = columns.failed_at.as_deref().map(find).transpose()?;
    let mode_col = columns.failure_mode.as_deref().map(find).transpose()?;
    let weight_col = columns.weight.as_deref().map(find).transpose()?;
    let mut feature_cols = Vec::new();
    for (name, column) in &columns.features {
        let j = FEATURES
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| {
                DataError::Invalid(format!("`{name}` is not a feature of the schema"))
            })?;
        feature_cols.push((j, find(column)?, name.as_str()));
    }
    let absent_features = FEATURES
        .iter()
        .filter(|f| !columns.features.iter().any(|(n, _)| n == f.name))
        .map(|f| f.name.to_string())
        .collect();

    let mut device_index: HashMap<String, usize> = HashMap::new();
    let mut devices: Vec<DeviceOutcome> = Vec::new();
    let mut raw = Vec::new();
    for record in reader.records() {
        let record =
            record.map_err(|e| csv_err(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |c: usize| record.get(c).unwrap_or("").trim();
        let id = cell(id_col);
        if id.is_empty() {
            return Err(csv_err(
                line,
                format!("column {}: empty device id", columns.id),
            ));
        }
        let t = columns.time_unit.parse(cell(time_col)).ok_or_else(|| {
            let what = match columns.time_unit {
                TimeUnit::Epoch => "neither ms since 1970 nor RFC 3339 (a counter of cycles or hours is read with --time-unit)".to_owned(),
                unit => format!("not a number of {unit:?} units at least 0"),
            };
            csv_err(
                line,
                format!("column {}: `{}` is {what}", columns.time, cell(time_col)),
            )
        })?;
        let label = match cell(label_col).to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            other => {
                return Err(csv_err(
                    line,
                    format!(
                        "column {}: `{other}` is not a label (1/0, true/false, yes/no)",
                        columns.label
                    ),
                ))
            }
        };
        let mut v = FeatureVector::missing();
        for (j, c, name) in &feature_cols {
            let text = cell(*c);
            if text.is_empty() {
                continue;
            }
            v.0[*j] = text
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    csv_err(
                        line,
                        format!("column {name}: `{text}` is not a finite number"),
                    )
                })?;
        }
        let d = *device_index.entry(id.to_string()).or_insert_with(|| {
            devices.push(DeviceOutcome {
                id: id.to_string(),
                failed_at_ms: None,
                failure_mode: None,
                failed: false,
                origin: 0,
            });
            devices.len() - 1
        });
        let outcome = &mut devices[d];
        outcome.failed |= label;
        if let Some(c) = failed_col {
            if let Some(f) = columns.time_unit.parse(cell(c)) {
                outcome.failed_at_ms = Some(f);
                outcome.failed = true;
            }
        }
        if let Some(c) = mode_col {
            if !cell(c).is_empty() {
                outcome.failure_mode = Some(cell(c).to_string());
            }
        }
        let w = match weight_col {
            None => 1.0,
            Some(c) => cell(c)
                .parse::<f64>()
                .ok()
                .filter(|w| w.is_finite() && *w > 0.0)
                .ok_or_else(|| {
                    csv_err(
                        line,
                        format!(
                            "column {}: `{}` is not a weight (a number above 0)",
                            columns.weight.as_deref().unwrap_or_default(),
                            cell(c)
                        ),
                    )
                })?,
        };
        raw.push((d, t, v, label, w));
    }
    // Devices sorted by id, as from a simulation, so reports list them stably.
    let mut order: Vec<usize> = (0..devices.len()).collect();
    order.sort_by(|a, b| devices[*a].id.cmp(&devices[*b].id));
    let mut new_index = vec![0u32; devices.len()];
    for (new, old) in order.iter().enumerate() {
        new_index[*old] = new as u32;
    }
    let devices = order.iter().map(|i| devices[*i].clone()).collect();
    let rows = raw
        .into_iter()
        .map(|(d, t, v, y, w)| (new_index[d], t, v, y, w))
        .collect();
    LabelledSet::from_parts(
        rows,
        devices,
        horizon_days,
        path.display().to_string(),
        absent_features,
    )
}

/// One device's history from a simulated data set, replayed up to `at` (or to its last
/// message), with the time the features are taken at. For explaining one device's score.
pub fn device_history(
    dir: &Path,
    device_id: &str,
    at: Option<u64>,
) -> Result<(DeviceHistory, u64), DataError> {
    let io = |path: PathBuf| move |source| DataError::Io { path, source };
    let truth = dataset::read_truth(dir).map_err(io(dir.join(dataset::GROUND_TRUTH)))?;
    let purchased = truth
        .iter()
        .find(|t| t.device_id == device_id)
        .and_then(|t| parse_time(&t.purchased_at))
        .map(Timestamp);
    let limits = Limits::default();
    let needle = format!("/{device_id}/");
    let mut messages = Vec::new();
    dataset::for_each_message(dir, |topic, payload| {
        if topic.contains(&needle) {
            if let Ok(d) = protocol::decode(topic, payload, &limits) {
                messages.push(d.message);
            }
        }
    })
    .map_err(io(dir.to_path_buf()))?;
    if messages.is_empty() {
        return Err(DataError::Invalid(format!(
            "{}: no telemetry from device {device_id}",
            dir.display()
        )));
    }
    messages.sort_by_key(ts_of);
    let last = messages.last().map(ts_of).unwrap_or(0);
    let at = at.unwrap_or(last);
    let mut history = DeviceHistory::new(purchased);
    for m in messages.iter().filter(|m| ts_of(m) <= at) {
        history.observe(m);
    }
    Ok((history, at))
}
