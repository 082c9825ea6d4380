//! Shared harness for the end-to-end tests: where the real services are, and small
//! clients to talk to them.
//!
//! `scripts/test.sh` starts Mosquitto, PostgreSQL and VictoriaMetrics (the InfluxDB v2
//! write API) on loopback, installs Chromium and its driver, and exports their addresses in `FLEET_TEST_*` variables. A
//! test that needs a service and finds no address, or cannot reach it, fails with a
//! message naming the service and how to start it: it never passes or skips quietly.

pub mod browser;
pub mod faults;
pub mod mqtt;
pub mod services;

/// A name unique to this process and call, for topics, tables and measurements that
/// must not collide with other tests or earlier runs.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
