//! Running one device through the whole window without a broker, as fast as the agent
//! code allows: the `generate` mode.
//!
//! The real agent runs unchanged. What the live session does on the network is done
//! here in-line and in the same order: a birth (and its Last Will reserved) on every
//! connection, messages spooled while the network is down and delivered marked
//! historical when it is back, the Will when the device dies or resets while connected.

use edge_agent::session::{historical, step, Host, HostEvent};
use edge_agent::spool::{Spool, SpoolConfig, Sync};
use edge_agent::{Agent, Settings};
use protocol::ids::TenantId;
use protocol::{Limits, Message, Timestamp};

use crate::device::SimDevice;
use crate::fleet::DeviceSpec;

/// Where messages go: `(topic, payload)` in delivery order.
pub trait Sink {
    /// Takes one delivered message.
    fn deliver(&mut self, topic: &str, payload: &[u8]) -> std::io::Result<()>;
}

impl<F: FnMut(&str, &[u8]) -> std::io::Result<()>> Sink for F {
    fn deliver(&mut self, topic: &str, payload: &[u8]) -> std::io::Result<()> {
        self(topic, payload)
    }
}

/// Agent settings and the spool budget for simulated devices.
#[derive(Debug, Clone)]
pub struct SimSettings {
    /// The agent's settings.
    pub agent: Settings,
    /// Spool budget per device, bytes.
    pub spool_budget: u64,
}

impl Default for SimSettings {
    /// Ten-minute samples and hourly heartbeats: the agent's defaults, except sampling,
    /// which the simulator thins to keep months fast.
    fn default() -> Self {
        SimSettings {
            agent: Settings {
                sample_interval_s: 600,
                heartbeat_interval_s: 3600,
                battery_drop_threshold_pct: 10.0,
                battery_drop_window_s: 1800,
                over_temp_threshold_c: 60.0,
            },
            spool_budget: 256 * 1024,
        }
    }
}

/// What happened to one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Messages delivered.
    pub delivered: u64,
    /// Messages the spool dropped.
    pub dropped: u64,
    /// Firmware at the end.
    pub final_firmware: &'static str,
    /// Device-days simulated (until the end or its failure).
    pub days: f64,
}

struct Link {
    up: bool,
    will: Option<Message>,
}

/// Simulates one device from `start` to `end`, delivering to `sink`.
pub fn simulate(
    spec: DeviceSpec,
    start: Timestamp,
    end: Timestamp,
    settings: &SimSettings,
    tenant: &TenantId,
    sink: &mut dyn Sink,
) -> std::io::Result<Outcome> {
    let limits = Limits::default();
    let mut dev = SimDevice::new(spec, start);
    let mut spool = Spool::in_memory(SpoolConfig {
        budget_bytes: settings.spool_budget,
        segment_bytes: settings.spool_budget,
        sync: Sync::Never,
    });
    let mut out = Outcome {
        delivered: 0,
        dropped: 0,
        final_firmware: "",
        days: 0.0,
    };
    let mut t = start;
    'boots: while t < end {
        let (mut agent, boot) = Agent::boot(
            dev.identity(),
            dev.saved.clone(),
            settings.agent.clone(),
            dev.hardware(),
            t,
        );
        let mut link = Link {
            up: false,
            will: None,
        };
        let mut queue = boot;
        loop {
            let up = dev.network_up();
            if up && !link.up {
                let birth = agent.birth(t);
                link.will = Some(agent.will(t));
                queue.insert(0, birth);
            }
            if !up {
                link.will = None;
            }
            link.up = up;
            deliver(
                &mut agent, &mut spool, &mut queue, up, tenant, &limits, sink, &mut out,
            )?;
            dev.persist(&mut agent);

            t = Timestamp(t.0 + u64::from(agent.settings().sample_interval_s) * 1000);
            if t >= end {
                break 'boots;
            }
            let res = step(&mut agent, &mut dev, t, link.up);
            queue = res.messages;
            if let Some(exit) = res.exit {
                queue.extend(res.goodbye.filter(|_| link.up));
                if matches!(exit, HostEvent::Reset { .. }) {
                    // The broker sees the connection die and publishes the Will.
                    queue.extend(link.will.take().filter(|_| link.up));
                }
                deliver(
                    &mut agent, &mut spool, &mut queue, link.up, tenant, &limits, sink, &mut out,
                )?;
                dev.persist(&mut agent);
                if dev.dead {
                    break 'boots;
                }
                t = Timestamp(t.0 + dev.downtime_ms(&exit));
                continue 'boots;
            }
        }
    }
    out.final_firmware = dev.firmware().version;
    out.days = (t.0.min(end.0) - start.0) as f64 / 86_400_000.0;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn deliver(
    agent: &mut Agent,
    spool: &mut Spool,
    queue: &mut Vec<Message>,
    up: bool,
    tenant: &TenantId,
    limits: &Limits,
    sink: &mut dyn Sink,
    out: &mut Outcome,
) -> std::io::Result<()> {
    let to_io = |e: edge_agent::spool::SpoolError| std::io::Error::other(e.to_string());
    if up {
        // The spool first, in seq order, marked historical.
        while let Some(p) = spool.next_after(None) {
            let topic = format!(
                "{}/{}/{}/{}",
                protocol::topic::ROOT,
                tenant,
                agent.device_id(),
                p.channel.as_str()
            );
            let payload = historical(&topic, &p.payload, limits).unwrap_or(p.payload);
            sink.deliver(&topic, &payload)?;
            spool.retire(p.seq).map_err(to_io)?;
            out.delivered += 1;
        }
    }
    for m in queue.drain(..) {
        let Ok(payload) = m.encode(limits) else {
            continue;
        };
        let topic = m.topic(tenant).to_string();
        if up {
            sink.deliver(&topic, &payload)?;
            out.delivered += 1;
        } else if let (Some(seq), false) = (m.seq(), m.channel().retained()) {
            let dropped = spool.push(seq, m.channel(), &payload).map_err(to_io)?;
            out.dropped += u64::from(dropped);
            agent.note_spool_dropped(dropped);
        }
    }
    Ok(())
}
