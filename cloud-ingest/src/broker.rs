//! The in-process MQTT broker (rumqttd): what `cloud-ingest serve` runs with no
//! configuration, and what the demo's fleet and ingest meet at. Built with the
//! `embedded-broker` feature (part of the default `demo`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

/// Starts rumqttd listening on `addr` (port 0: a free one) on its own thread (it never
/// returns and has no shutdown: the thread ends with the process); the address it
/// listens on, once it accepts connections.
pub fn start(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    // Bind first: a busy port is a clear error here, not a silent broker thread failing.
    let listener = std::net::TcpListener::bind(addr).with_context(|| {
        format!("the in-process broker cannot listen on {addr} (is another broker there? set mqtt.embedded = false to use it)")
    })?;
    let addr = listener.local_addr()?;
    drop(listener);
    let config: rumqttd::Config = toml::from_str(&format!(
        r#"
        id = 0
        [router]
        id = 0
        max_connections = 20000
        max_outgoing_packet_count = 1000
        max_segment_size = 104857600
        max_segment_count = 10
        [v4.1]
        name = "v4-1"
        listen = "{addr}"
        next_connection_delay_ms = 1
        [v4.1.connections]
        connection_timeout_ms = 60000
        max_payload_size = {payload}
        max_inflight_count = 2000
        dynamic_filters = true
        "#,
        payload = protocol::Limits::default().max_payload_bytes + 4096,
    ))?;
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            if let Err(e) = rumqttd::Broker::new(config).start() {
                tracing::error!("in-process broker stopped: {e}");
            }
        })?;
    for _ in 0..250 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("the in-process broker did not listen on {addr}")
}
