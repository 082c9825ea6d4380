//! The cloud side: ingest, stores, scoring, policy, tickets, trade-in, cohorts, API and reports.
//!
//! Not built yet: this crate is reserved in the workspace layout of DESIGN.md and is
//! filled in by its own issue.
