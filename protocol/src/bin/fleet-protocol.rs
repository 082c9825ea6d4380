//! `fleet-protocol`: check payloads against the wire contract, and print examples.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use logging::LogFormat;
use protocol::reboot::RebootReason;
use protocol::{examples, Limits, Message};

/// Checks MQTT payloads against the fleet wire protocol (docs/protocol.md) exactly as
/// cloud ingest will, and prints a valid example of every message kind.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Log format: human or json.
    #[arg(long, env = logging::FORMAT_ENV, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print one valid example of every message kind with its topic, QoS and retain flag.
    Examples {
        /// Print only the example with this name (see the list without it).
        #[arg(long)]
        name: Option<String>,
    },
    /// Validate one payload as received on a topic; exit 1 if ingest would reject it.
    Check {
        /// The topic the payload is published on, e.g. fleet/acme/dev-1/heartbeat.
        #[arg(long)]
        topic: String,
        /// File holding the payload; standard input when absent or `-`.
        file: Option<PathBuf>,
        /// Largest payload accepted, bytes.
        #[arg(long, default_value_t = protocol::validate::DEFAULT_MAX_PAYLOAD_BYTES)]
        max_bytes: usize,
    },
    /// Print the reboot-reason table: code and class.
    Reasons,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.log_format) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Examples { name } => {
            let all = examples::all();
            let chosen: Vec<_> = all
                .iter()
                .filter(|(n, _)| name.as_deref().is_none_or(|want| want == *n))
                .collect();
            if chosen.is_empty() {
                let names: Vec<_> = all.iter().map(|(n, _)| *n).collect();
                anyhow::bail!(
                    "no example named {:?}; there are: {}",
                    name.unwrap_or_default(),
                    names.join(", ")
                );
            }
            for (n, msg) in chosen {
                let topic = msg.topic(&examples::tenant());
                // Encoding validates; the pretty form keeps the struct's field order.
                msg.encode(&Limits::default())?;
                println!(
                    "# {n}: {topic} (QoS {}, retain {})",
                    protocol::topic::QOS,
                    topic.channel.retained()
                );
                println!("{}", pretty(msg)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check {
            topic,
            file,
            max_bytes,
        } => {
            let payload = read_payload(file.as_deref())?;
            let limits = Limits {
                max_payload_bytes: max_bytes,
                ..Limits::default()
            };
            match protocol::decode(&topic, &payload, &limits) {
                Ok(d) => {
                    println!(
                        "ok: {} message for device {} of tenant {}",
                        d.topic.channel, d.topic.device, d.topic.tenant
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    tracing::debug!(reason = e.reason(), "rejected");
                    println!("rejected ({}): {e}", e.reason());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Cmd::Reasons => {
            for (reason, code) in RebootReason::standard() {
                println!("{code:<22} {:?}", reason.class());
            }
            println!("{:<22} Expected", "vendor_expected:CODE");
            println!("{:<22} Unexpected", "vendor_unexpected:CODE");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn pretty(msg: &Message) -> serde_json::Result<String> {
    match msg {
        Message::Heartbeat(m) => serde_json::to_string_pretty(m),
        Message::Event(m) => serde_json::to_string_pretty(m),
        Message::State(m) => serde_json::to_string_pretty(m),
        Message::Command(m) => serde_json::to_string_pretty(m),
        Message::Ack(m) => serde_json::to_string_pretty(m),
    }
}

fn read_payload(file: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    match file {
        Some(p) if p.as_os_str() != "-" => {
            buf = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
        }
    }
    Ok(buf)
}
