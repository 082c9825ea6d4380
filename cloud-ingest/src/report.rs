//! The after-sales review: each period's report and the action items it (or a flagged
//! cohort) raises, reviewed in the next period's. [`actions`] holds the action items'
//! rules, purely.

pub mod actions;
pub mod document;
pub mod figures;
pub mod html;
pub mod kpis;
pub mod markdown;
pub mod root_causes;
pub mod trend;

use crate::cohorts::watch::WatchConfig;
use crate::store::{Store, StoreError};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The period does not read (or has none before it).
    #[error("{0}")]
    Period(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads what a report is made from.
pub async fn gather(store: &Store) -> Result<document::ReportFacts, StoreError> {
    Ok(document::ReportFacts {
        service: store.service_facts().await?,
        fleet: store.fleet_facts().await?,
        flags: store.cohort_flags(None).await?,
        root_causes: store.root_causes().await?,
        actions: store.actions(None).await?,
    })
}

/// The report for `period` (`2026-11`, `2026-W48`) as the store stands at `now_ms`.
pub async fn make(
    store: &Store,
    period: &str,
    watch: &WatchConfig,
    now_ms: u64,
) -> Result<document::Report, ReportError> {
    // A bad period is refused before the store is read.
    crate::tradein::routing::period_range(period).map_err(ReportError::Period)?;
    let facts = gather(store).await?;
    document::build(period, &facts, watch, now_ms).map_err(ReportError::Period)
}

/// A report's file format.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One self-contained HTML file.
    Html,
    /// Markdown.
    Md,
    /// The JSON document (docs/reports.md).
    Json,
}

impl Format {
    /// The report in this format, links to the desk under `base`.
    pub fn render(self, r: &document::Report, base: &str) -> String {
        match self {
            Format::Html => html::document(r, base),
            Format::Md => markdown::document(r, base),
            Format::Json => serde_json::to_string_pretty(r).expect("a report serialises") + "\n",
        }
    }

    /// Its media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Md => "text/markdown; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}
