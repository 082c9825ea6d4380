//! Simulated device-days per second for `generate`, on one core, with and without the
//! gzip'd output, beside a baseline of the same devices' physics alone (no agent).
//!
//! Run: `cargo bench -p firmware-sim --bench generate`. Prints its figures; the
//! ratio against the physics-only baseline is the agent's and the encoder's share.

use std::io::Write;
use std::time::Instant;

use edge_agent::session::Host;
use firmware_sim::device::SimDevice;
use firmware_sim::fleet::{Fleet, DEFAULT_START};
use firmware_sim::offline::{simulate, SimSettings};
use protocol::ids::TenantId;
use protocol::Timestamp;

const DEVICES: usize = 200;
const DAYS: u32 = 60;

fn main() {
    let fleet = Fleet::generate(11, DEVICES, DAYS, DEFAULT_START);
    let settings = SimSettings::default();
    let tenant = TenantId::new("acme").unwrap();
    let step = u64::from(settings.agent.sample_interval_s) * 1000;

    // Baseline: the physics and the host alone, no agent, no encoding.
    let t = Instant::now();
    let mut device_days = 0.0;
    for spec in &fleet.devices {
        let mut dev = SimDevice::new(spec.clone(), fleet.start);
        let mut now = fleet.start;
        while now < fleet.end() && !dev.dead {
            let _ = dev.advance(now);
            now = Timestamp(now.0 + step);
        }
        device_days += (now.0.min(fleet.end().0) - fleet.start.0) as f64 / 86_400_000.0;
    }
    let physics = device_days / t.elapsed().as_secs_f64();

    let run = |gzip: bool| {
        let t = Instant::now();
        let mut days = 0.0;
        let mut bytes = 0u64;
        let mut gz = flate2::write::GzEncoder::new(std::io::sink(), flate2::Compression::fast());
        for spec in &fleet.devices {
            let mut sink = |topic: &str, payload: &[u8]| -> std::io::Result<()> {
                bytes += (topic.len() + payload.len() + 2) as u64;
                if gzip {
                    gz.write_all(topic.as_bytes())?;
                    gz.write_all(payload)?;
                }
                Ok(())
            };
            let out = simulate(
                spec.clone(),
                fleet.start,
                fleet.end(),
                &settings,
                &tenant,
                &mut sink,
            )
            .unwrap();
            days += out.days;
        }
        (days / t.elapsed().as_secs_f64(), bytes as f64 / days)
    };
    let (agent, bytes_per_day) = run(false);
    let (full, _) = run(true);
    let _ = DEFAULT_START;
    println!("generate, one core, {DEVICES} devices x {DAYS} days:");
    println!("  physics only (baseline):        {physics:>10.0} device-days/s");
    println!(
        "  + real agent + JSON encoding:   {agent:>10.0} device-days/s ({:.2}x baseline time)",
        physics / agent
    );
    println!(
        "  + gzip output (what generate does): {full:>6.0} device-days/s ({:.2}x baseline time)",
        physics / full
    );
    println!("  telemetry before compression:   {bytes_per_day:>10.0} bytes/device-day");
}
