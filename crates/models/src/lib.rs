//! Feature definitions shared by the edge agent, the trainer and cloud-ingest, and the
//! simulated data sets the trainer reads ([`dataset`], behind the default `data` feature).
//!
//! [`features`] is the one implementation of each windowed feature: the edge agent
//! computes the subset it reports in heartbeats with these functions, and the trainer
//! and cloud-ingest compute the same values from stored history with them. The module
//! depends on `protocol` only, so the agent links it without linfa.

#[cfg(feature = "data")]
pub mod dataset;
pub mod features;
