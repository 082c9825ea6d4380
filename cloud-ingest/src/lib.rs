//! The cloud side of the fleet service: MQTT ingest, the operational store, scoring,
//! the after-sales policy, tickets and their offers, webhooks, telemetry export and the
//! operator endpoints.
//!
//! Read in the order a message travels: [`consumer`] takes it off the broker;
//! [`pipeline`] decodes, deduplicates and stores it ([`store`]), updates the device's
//! feature state and scores it ([`score`]), asks the [`policy`] what to do and opens a
//! ticket ([`tickets`]) with its offer ([`offers`], [`tradein`]); the outboxes are
//! drained by the command worker, the [`webhook`] worker and the [`telemetry`]
//! exporter. [`service`] wires it together; [`demo`] runs it against a simulated fleet.

pub mod config;
pub mod consumer;
#[cfg(feature = "demo")]
pub mod demo;
pub mod http;
pub mod metrics;
pub mod offers;
pub mod pipeline;
pub mod policy;
pub mod score;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tickets;
pub mod tradein;
pub mod webhook;
