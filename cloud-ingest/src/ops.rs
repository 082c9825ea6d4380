//! Operating the service: `/healthz` and `/metrics` ([`http`]), the Prometheus
//! [`metrics`], and the named internal [`events`] through which every stage reports, so
//! a log line and its counter always move together; noisy lines go through a
//! [`throttle`].

pub mod events;
pub mod http;
pub mod metrics;
pub mod throttle;
