//! The training set the desk's outcomes make: `cloud-ingest export-labels` writes every
//! resolved ticket's feature vector and label ([`crate::tickets::labels`]) to
//! `labels.csv`, with `labels.json` saying what it holds, for `models train --csv`.

use std::io::Write;
use std::path::{Path, PathBuf};

use models::schema::{schema_fingerprint, FEATURES};
use serde::Serialize;

use crate::store::{Store, StoreError};
use crate::tickets::labels::{self, Tally};

/// The data file's name.
pub const CSV: &str = "labels.csv";
/// The graded trade-ins' file's name.
pub const TRADEINS_CSV: &str = "tradeins.csv";
/// The manifest's name.
pub const MANIFEST: &str = "labels.json";
/// Tickets read per store query.
const PAGE: u32 = 1_000;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store could not be read.
    #[error("reading the tickets: {0}")]
    Store(#[from] StoreError),
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// `labels.json`: what the export holds and how to train on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// The feature schema's fingerprint the rows were scored on.
    pub schema: String,
    /// The feature columns, in order.
    pub features: Vec<&'static str>,
    /// Rows and skipped tickets.
    #[serde(flatten)]
    pub tally: Tally,
    /// Rows of `tradeins.csv` (graded trade-ins: the bench against the quote's telemetry)
    /// and skipped trade-ins.
    pub tradeins: Tally,
    /// Written at, ms (wall clock).
    pub exported_ms: u64,
    /// The command that trains on it.
    pub train: String,
}

/// Writes `dir/labels.csv` and `dir/labels.json` from every ticket with an outcome;
/// files are written beside and renamed into place, so a failed export leaves the last
/// good one whole.
///
/// Graded trade-ins go to `dir/tradeins.csv`: the same columns, labelled 1 when the
/// bench confirmed a fault (functional grade 3 or worse, or the battery below
/// `battery_floor_pct`), then the bench's readings beside the quote's telemetry.
pub async fn export(
    store: &Store,
    dir: &Path,
    now_ms: u64,
    battery_floor_pct: u8,
) -> Result<Manifest, ExportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let csv = dir.join(CSV);
    let part = dir.join(format!("{CSV}.part"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&part).map_err(io(&part))?);
    writeln!(out, "{}", labels::header()).map_err(io(&part))?;
    let schema = schema_fingerprint();
    let mut tally = Tally::default();
    let mut after = 0;
    loop {
        let page = store.outcome_tickets(after, PAGE, 0).await?;
        for (id, t) in &page {
            after = *id;
            let row = labels::row_of(t, &schema);
            if let Ok(r) = &row {
                writeln!(out, "{}", labels::line(r)).map_err(io(&part))?;
            }
            tally.count(&row);
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .map_err(io(&part))?;
    std::fs::rename(&part, &csv).map_err(io(&csv))?;
    let tradeins = export_tradeins(store, dir, &schema, battery_floor_pct).await?;
    let manifest = Manifest {
        schema,
        features: FEATURES.iter().map(|f| f.name).collect(),
        tally,
        tradeins,
        exported_ms: now_ms,
        train: format!(
            "models train --csv {} --mode-col mode --weight-col weight --out model.json",
            csv.display()
        ),
    };
    let path = dir.join(MANIFEST);
    let json = serde_json::to_string_pretty(&manifest).expect("plain data serialises");
    std::fs::write(&path, json + "\n").map_err(io(&path))?;
    Ok(manifest)
}

async fn export_tradeins(
    store: &Store,
    dir: &Path,
    schema: &str,
    battery_floor_pct: u8,
) -> Result<Tally, ExportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    let csv = dir.join(TRADEINS_CSV);
    let part = dir.join(format!("{TRADEINS_CSV}.part"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&part).map_err(io(&part))?);
    writeln!(out, "{}", labels::bench_header()).map_err(io(&part))?;
    let mut tally = Tally::default();
    let mut after = 0;
    loop {
        let page = store.graded_tradeins(after, PAGE).await?;
        for (id, t) in &page {
            after = *id;
            let row = labels::bench_row_of(t, schema, battery_floor_pct);
            if let Ok(r) = &row {
                writeln!(out, "{}", labels::bench_line(r)).map_err(io(&part))?;
            }
            tally.count(&row.map(|r| r.row));
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .map_err(io(&part))?;
    std::fs::rename(&part, &csv).map_err(io(&csv))?;
    Ok(tally)
}
