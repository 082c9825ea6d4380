//! The operational store. All SQL of the crate lives in this module, one submodule per
//! table family, read in the order a message touches them:
//!
//! - [`messages`]: accepted messages (dedup record, feature source, export buffer);
//! - [`dead_letters`]: rejected input with its reason;
//! - [`devices`]: sequence accounting, liveness and identity, latest score;
//! - [`features`]: each device's feature history as of its last batch;
//! - [`registry`]: owners and purchase terms;
//! - [`tickets`]: tickets and their event log;
//! - [`tradeins`]: the recycling desk's trade-ins and the SKUs' weights;
//! - [`outbox`]: commands to devices and webhook deliveries;
//! - [`retention`]: pruning what is old.
//!
//! One implementation for SQLite (the embedded default) and PostgreSQL, through sqlx's
//! `Any` driver: only integers, floats, text and bytes cross it, placeholders are `$n`,
//! and SQL is written in the dialect both speak (`ON CONFLICT`, `RETURNING`, `CASE`
//! instead of `MAX`/`GREATEST`, row values). Each database has its own migrations
//! directory, picked at start. SQLite gets one connection: every write is funnelled
//! through it, so "database is locked" cannot happen inside one process.

pub mod actions;
pub mod campaigns;
pub mod cohorts;
pub mod dead_letters;
pub mod devices;
pub mod features;
pub mod messages;
pub mod model_versions;
pub mod outbox;
pub mod progress;
pub mod registry;
pub mod reports;
pub mod retention;
pub mod tickets;
pub mod tradeins;
pub mod users;

use std::str::FromStr;

use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyPool, ConnectOptions, Transaction};

pub use devices::SeqStats;
pub use registry::Registration;
pub use tickets::TicketRow;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrating the schema failed.
    #[error("migrating the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no database we support, or does not parse.
    #[error("store URL {url:?}: {reason}; use sqlite://PATH or postgres://USER:PASS@HOST/DB")]
    Url {
        /// The URL as given (without its password).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Creating the SQLite file's directory failed.
    #[error("creating {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A stored value does not parse.
    #[error("stored value: {0}")]
    Corrupt(String),
    /// A row changed between reading and writing it (another replica, or a concurrent
    /// desk action): the caller retries with what is stored now.
    #[error("concurrent change: {0}")]
    Conflict(String),
    /// A ticket move the state machine refuses.
    #[error(transparent)]
    Transition(#[from] crate::tickets::TransitionError),
    /// A ticket that does not exist.
    #[error("no ticket {0}")]
    NoTicket(String),
    /// Input from outside refused before anything was written.
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether the store is unavailable rather than refusing this data: unreachable,
    /// restarting, out of connections or disk, locked. Such an error says nothing about
    /// the rows being written, so the caller waits and tries the same again.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => true,
            sqlx::Error::Database(d) => {
                let code = d.code().unwrap_or_default();
                // PostgreSQL: connection (08), resources such as a full disk (53),
                // operator intervention such as a shutdown (57), system errors (58).
                // SQLite (primary codes): BUSY 5, LOCKED 6, NOMEM 7, READONLY 8,
                // IOERR 10, FULL 13, CANTOPEN 14, PROTOCOL 15.
                let primary = code.parse::<i64>().map(|c| c & 0xff);
                ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c))
                    || primary.is_ok_and(|c| [5, 6, 7, 8, 10, 13, 14, 15].contains(&c))
            }
            _ => false,
        }
    }
}

/// Which database the store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: the embedded default.
    Sqlite,
    /// PostgreSQL: production, shared by replicas.
    Postgres,
}

/// How SQLite commits (ignored on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqliteSync {
    /// fsync at every commit: survives power loss.
    Full,
    /// fsync at checkpoints (WAL): survives a crash of the process, not of the machine.
    Normal,
}

/// The operational store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// A transaction on the store.
pub type Tx = Transaction<'static, Any>;

/// Rows per multi-row statement. SQLite looks bound parameters up by a linear scan, so
/// statements of a few hundred parameters are the sweet spot.
pub(crate) const CHUNK: usize = 64;

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`.
    pub async fn open(
        url: &str,
        max_connections: u32,
        sync: SqliteSync,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let bad = |reason: String| StoreError::Url {
            url: crate::service::redact(url),
            reason,
        };
        let (backend, url) = if url.starts_with("sqlite:") {
            // sqlx's own parser reads the URL; the Any driver then gets it back whole,
            // with `mode=rwc` so a new database file is created.
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| bad(e.to_string()))?
                .create_if_missing(true);
            let file = options.get_filename();
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                if file.as_os_str() != ":memory:" {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
            }
            (Backend::Sqlite, options.to_url_lossy().to_string())
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            PgConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(bad("not a SQLite or PostgreSQL URL".into()));
        };
        let options = match backend {
            Backend::Sqlite => {
                // Pragmas per connection: the Any driver takes a URL, which carries none.
                let sync = match sync {
                    SqliteSync::Full => "PRAGMA synchronous = FULL",
                    SqliteSync::Normal => "PRAGMA synchronous = NORMAL",
                };
                AnyPoolOptions::new()
                    .max_connections(1)
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            sqlx::query("PRAGMA journal_mode = WAL")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query(sync).execute(&mut *conn).await?;
                            sqlx::query("PRAGMA foreign_keys = ON")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
            }
            Backend::Postgres => AnyPoolOptions::new().max_connections(max_connections.max(2)),
        };
        let pool = options.connect(&url).await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        Ok(Store { pool, backend })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes the pool, waiting for connections to return.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction that claims rows: it takes SQLite's write lock up front (`BEGIN
    /// IMMEDIATE`), so its reads cannot go stale before its writes; on PostgreSQL the
    /// claiming `SELECT` ends in [`Store::skip_locked`].
    pub async fn begin_claim(&self) -> Result<Tx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// What a claiming `SELECT` ends with: rows another transaction holds are skipped.
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Appends `rows` tuples of `cols` numbered placeholders: `($1, $2), ($3, $4)`. Both
/// databases read `$n` (sqlx's query builder writes `?` for the Any driver, which
/// PostgreSQL does not); only numbers are formatted into the text, every value is bound.
pub(crate) fn push_placeholders(sql: &mut String, rows: usize, cols: usize) {
    use std::fmt::Write;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            let sep = if c == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${}", r * cols + c + 1);
        }
        sql.push(')');
    }
}

/// Parses a stored name into its type.
pub(crate) fn parse<T: FromStr>(s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_value() {
        let mut s = String::new();
        push_placeholders(&mut s, 2, 3);
        assert_eq!(s, "($1, $2, $3), ($4, $5, $6)");
    }

    #[tokio::test]
    async fn bad_store_urls_are_refused_with_the_reason() {
        for url in [
            "mysql://h/db",
            "postgres://u:secret@h:notaport/db",
            "file.db",
        ] {
            let e = Store::open(url, 2, SqliteSync::Full).await.unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, StoreError::Url { .. }), "{url}: {text}");
            assert!(!text.contains("secret"), "the password stays out: {text}");
        }
    }

    #[tokio::test]
    async fn a_sqlite_url_creates_its_directory_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/fleet.db");
        let store = Store::open(
            &format!("sqlite://{}", path.display()),
            1,
            SqliteSync::Normal,
        )
        .await
        .unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        assert!(store.ping().await);
        assert!(path.exists());
        store.close().await;
    }
}
