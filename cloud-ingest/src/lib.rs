//! The cloud side of the fleet service: MQTT ingest, the operational store, scoring,
//! the after-sales policy, tickets and their offers, the effects that leave through
//! outboxes, and the operator endpoints.
//!
//! Read in the order work flows: [`ingest`] takes a message off the broker, decodes,
//! deduplicates and plans what it changes, purely, then applies the plan to the
//! [`store`] in one transaction; planning scores the device ([`score`]) and asks the
//! [`policy`] what to do, which may open a ticket ([`tickets`]) with its offer
//! ([`policy::offer`], [`tradein`]). The [`effects`] workers drain the outboxes
//! (commands to devices, webhooks, InfluxDB); [`retention`] prunes what is old.
//! [`desk`] is the people's side (API and pages); [`training_set`] turns resolved
//! tickets into labels for the next model.
//! [`ops`] serves `/healthz` and `/metrics`
//! and holds the internal events every stage reports through. [`service`] wires it
//! together, with the in-process `broker` when it is embedded; `demo` (the default
//! `demo` feature) runs it against a simulated fleet.
//!
//! The library links neither the edge agent nor the simulator: `cargo tree -p
//! cloud-ingest -e normal --no-default-features` shows protocol, models (its `score`
//! feature only, no linfa), logging and third-party crates. The demo is a feature and
//! not a crate of its own so that `cargo run -p cloud-ingest -- demo` stays the one
//! command that runs the whole job; a server build turns it off.

#[cfg(feature = "embedded-broker")]
pub mod broker;
pub mod campaigns;
pub mod cohorts;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod desk;
pub mod effects;
pub mod ingest;
pub mod ops;
pub mod policy;
pub mod registry;
pub mod report;
pub mod retention;
pub mod score;
pub mod service;
pub mod store;
pub mod tickets;
pub mod tradein;
pub mod training_set;
