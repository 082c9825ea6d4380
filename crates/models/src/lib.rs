//! Feature definitions shared by the edge agent, the trainer and cloud-ingest.
//!
//! [`features`] is the one implementation of each windowed feature: the edge agent
//! computes the subset it reports in heartbeats with these functions, and the trainer
//! and cloud-ingest compute the same values from stored history with them. The module
//! depends on `protocol` only, so the agent links it without linfa.

pub mod features;
