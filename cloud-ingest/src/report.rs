//! The after-sales review: each period's report and the action items it (or a flagged
//! cohort) raises, reviewed in the next period's. [`actions`] holds the action items'
//! rules, purely.

pub mod actions;
pub mod kpis;
pub mod root_causes;
pub mod trend;
