//! The one tracing set-up the workspace's binaries share.
//!
//! Logs go to standard error, so a binary's standard output stays free for its data.
//! Human-readable by default, one JSON object per line on request (`--log-format json`
//! or `LOG_FORMAT=json`), filtered by `RUST_LOG` (default `info`).

use std::fmt;
use std::io::{self, IsTerminal};
use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The environment variable that selects the format when no flag does; binaries pass it
/// to clap as the `--log-format` flag's `env`.
pub const FORMAT_ENV: &str = "LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = LogError;
    fn from_str(s: &str) -> Result<Self, LogError> {
        match s.to_ascii_lowercase().as_str() {
            "human" | "text" | "pretty" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(LogError::UnknownFormat(s.to_owned())),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        })
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The format name is not known.
    #[error("unknown log format `{0}`; use `human` or `json`")]
    UnknownFormat(String),
    /// `RUST_LOG` does not parse as a filter.
    #[error("RUST_LOG is not a valid filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// A global subscriber was already installed.
    #[error("logging was already initialised: {0}")]
    AlreadySet(#[from] tracing::subscriber::SetGlobalDefaultError),
}

/// Builds a subscriber writing to `writer`, filtered by `filter` (a `RUST_LOG`-style
/// directive string), with terminal colours in the human format when `ansi`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    ansi: bool,
    writer: W,
) -> Result<Box<dyn Subscriber + Send + Sync>, LogError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::builder().parse(filter)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi && format == LogFormat::Human)
        .with_writer(writer);
    Ok(match format {
        LogFormat::Human => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    })
}

/// Installs the process-wide subscriber: `format`, filtered by `RUST_LOG` or `info`,
/// writing to standard error; coloured only on a terminal and without `NO_COLOR`.
pub fn init(format: LogFormat) -> Result<(), LogError> {
    let filter = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| "info".to_owned());
    let ansi = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let sub = subscriber(format, &filter, ansi, io::stderr)?;
    tracing::subscriber::set_global_default(sub)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn capture(format: LogFormat, filter: &str, ansi: bool) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = subscriber(format, filter, ansi, move || out.clone()).unwrap();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(device = "dev-1", "ingested");
            tracing::debug!("hidden at info");
        });
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_format_writes_one_object_per_line() {
        // Colours never leak into JSON, even when asked for.
        let out = capture(LogFormat::Json, "info", true);
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(lines.len(), 1, "debug line must be filtered out: {out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["message"], "ingested");
        assert_eq!(v["device"], "dev-1");
        assert_eq!(v["level"], "INFO");
    }

    #[test]
    fn human_format_is_not_json_and_honours_filter() {
        let out = capture(LogFormat::Human, "debug", false);
        assert!(
            !out.contains('\x1b'),
            "no escape codes without ansi: {out:?}"
        );
        assert!(
            out.contains("ingested") && out.contains("device=\"dev-1\""),
            "{out}"
        );
        assert!(out.contains("hidden at info"));
        assert!(serde_json::from_str::<serde_json::Value>(out.lines().next().unwrap()).is_err());
    }

    #[test]
    fn ansi_colours_only_when_asked() {
        assert!(capture(LogFormat::Human, "info", true).contains('\x1b'));
    }

    #[test]
    fn parses_format_names_and_rejects_others() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("human".parse::<LogFormat>().unwrap(), LogFormat::Human);
        assert!(matches!(
            "xml".parse::<LogFormat>(),
            Err(LogError::UnknownFormat(s)) if s == "xml"
        ));
    }

    #[test]
    fn bad_filter_is_an_error() {
        assert!(matches!(
            subscriber(LogFormat::Human, "=[", false, io::sink),
            Err(LogError::Filter(_))
        ));
    }
}
