//! The operational store: accepted messages (the dedup record and the source the
//! feature state is rebuilt from), dead letters, the device registry, tickets and the
//! outboxes of commands and webhooks.
//!
//! One implementation for SQLite (the embedded default) and PostgreSQL, through sqlx's
//! `Any` driver: only integers, floats, text and bytes cross it, placeholders are `$n`,
//! and SQL is written in the dialect both speak (`ON CONFLICT`, `RETURNING`, `CASE`
//! instead of `MAX`/`GREATEST`). Each database has its own migrations directory, picked
//! at start. SQLite gets one connection: every write is funnelled through it, so
//! "database is locked" cannot happen inside one process.

use std::path::Path;
use std::str::FromStr;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};

use crate::policy::Problem;
use crate::tickets::{TicketState, Tier};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrating the schema failed.
    #[error("migrating the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no database we support.
    #[error("unsupported store URL {0:?}: use sqlite://PATH or postgres://USER:PASS@HOST/DB")]
    Url(String),
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
    /// A ticket move the state machine refuses.
    #[error(transparent)]
    Transition(#[from] crate::tickets::TransitionError),
    /// A ticket that does not exist.
    #[error("no ticket {0}")]
    NoTicket(String),
}

/// Which database the store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: the embedded default.
    Sqlite,
    /// PostgreSQL: production, shared by replicas.
    Postgres,
}

/// The operational store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
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

/// A transaction on the store.
pub type Tx = Transaction<'static, Any>;

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`.
    pub async fn open(
        url: &str,
        max_connections: u32,
        sync: SqliteSync,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        let mut url = url.to_owned();
        if backend == Backend::Sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or("");
            if !path.is_empty() && path != ":memory:" {
                if let Some(dir) = Path::new(path)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
            }
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
        }
        let mut options = AnyPoolOptions::new();
        options = match backend {
            Backend::Sqlite => {
                let sync = match sync {
                    SqliteSync::Full => "PRAGMA synchronous = FULL",
                    SqliteSync::Normal => "PRAGMA synchronous = NORMAL",
                };
                options.max_connections(1).after_connect(move |conn, _| {
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
            Backend::Postgres => options.max_connections(max_connections.max(2)),
        };
        let pool = options.connect(&url).await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        Ok(Store { pool })
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

    /// The pool, for read-only queries elsewhere in the crate.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// An accepted device message.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// The device.
    pub device_id: &'a str,
    /// Its seq.
    pub seq: u64,
    /// Its tenant.
    pub tenant: &'a str,
    /// Its channel.
    pub channel: &'a str,
    /// Device time.
    pub ts_ms: u64,
    /// Ingest time.
    pub received_ms: u64,
    /// The payload as received.
    pub payload: &'a str,
    /// Whether the telemetry exporter still has to send it.
    pub export_pending: bool,
}

/// Records many messages in one statement per 64 (SQLite looks bound parameters up
/// by a linear scan: a few hundred per statement is the sweet spot), skipping those already stored; the
/// `(device, seq)` of the ones that were new.
pub async fn insert_messages(
    c: &mut AnyConnection,
    rows: &[NewMessage<'_>],
) -> Result<std::collections::HashSet<(String, u64)>, StoreError> {
    let mut fresh = std::collections::HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(64) {
        // `$n` placeholders, which both databases read (sqlx's query builder writes
        // `?` for the Any driver, which PostgreSQL does not). Only numbers are formatted
        // into the text; every value is bound.
        let mut sql = String::from(
            "INSERT INTO messages (device_id, seq, tenant, channel, ts_ms, received_ms, payload, export_pending) VALUES ",
        );
        push_placeholders(&mut sql, chunk.len(), 8);
        sql.push_str(" ON CONFLICT (device_id, seq) DO NOTHING RETURNING device_id, seq");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in chunk {
            q = q
                .bind(m.device_id.to_owned())
                .bind(m.seq as i64)
                .bind(m.tenant.to_owned())
                .bind(m.channel.to_owned())
                .bind(m.ts_ms as i64)
                .bind(m.received_ms as i64)
                .bind(m.payload.to_owned())
                .bind(i64::from(m.export_pending));
        }
        for r in q.fetch_all(&mut *c).await? {
            fresh.insert((r.try_get(0)?, r.try_get::<i64, _>(1)? as u64));
        }
    }
    Ok(fresh)
}

/// Appends `rows` tuples of `cols` numbered placeholders: `($1, $2), ($3, $4)`. Both
/// databases read `$n` (sqlx's query builder writes `?` for the Any driver, which
/// PostgreSQL does not); only numbers are formatted into the text, every value is bound.
fn push_placeholders(sql: &mut String, rows: usize, cols: usize) {
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

/// New messages of one device in a batch.
#[derive(Debug, Clone)]
pub struct Arrivals<'a> {
    /// The device.
    pub device_id: &'a str,
    /// Its tenant.
    pub tenant: &'a str,
    /// How many new messages.
    pub n: u64,
    /// Their lowest seq.
    pub min_seq: u64,
    /// Their highest seq.
    pub max_seq: u64,
    /// Their earliest device time.
    pub first_ts_ms: u64,
    /// Their latest device time.
    pub last_ts_ms: u64,
}

/// Counts new messages against their devices (registering devices on first sight), one
/// statement per 64 devices; each device's accounting after the update. The devices
/// must be distinct.
pub async fn devices_seen(
    c: &mut AnyConnection,
    arrivals: &[Arrivals<'_>],
) -> Result<std::collections::HashMap<String, SeqStats>, StoreError> {
    let mut out = std::collections::HashMap::with_capacity(arrivals.len());
    for chunk in arrivals.chunks(64) {
        // `$n` placeholders (see insert_messages); only numbers are formatted in.
        let mut sql = String::from(
            "INSERT INTO devices (device_id, tenant, first_seen_ms, last_seen_ms, min_seq, max_seq, msg_count) VALUES ",
        );
        push_placeholders(&mut sql, chunk.len(), 7);
        sql.push_str(
            " ON CONFLICT (device_id) DO UPDATE SET
            last_seen_ms = CASE WHEN excluded.last_seen_ms > devices.last_seen_ms
                           THEN excluded.last_seen_ms ELSE devices.last_seen_ms END,
            min_seq = CASE WHEN excluded.min_seq < devices.min_seq OR devices.msg_count = 0
                      THEN excluded.min_seq ELSE devices.min_seq END,
            max_seq = CASE WHEN excluded.max_seq > devices.max_seq
                      THEN excluded.max_seq ELSE devices.max_seq END,
            msg_count = devices.msg_count + excluded.msg_count
         RETURNING device_id, msg_count, min_seq, max_seq",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in chunk {
            q = q
                .bind(a.device_id.to_owned())
                .bind(a.tenant.to_owned())
                .bind(a.first_ts_ms as i64)
                .bind(a.last_ts_ms as i64)
                .bind(a.min_seq as i64)
                .bind(a.max_seq as i64)
                .bind(a.n as i64);
        }
        for r in q.fetch_all(&mut *c).await? {
            out.insert(
                r.try_get(0)?,
                SeqStats {
                    count: r.try_get::<i64, _>(1)? as u64,
                    min_seq: r.try_get::<i64, _>(2)? as u64,
                    max_seq: r.try_get::<i64, _>(3)? as u64,
                },
            );
        }
    }
    Ok(out)
}

/// A device's sequence accounting after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqStats {
    /// Distinct messages accepted.
    pub count: u64,
    /// Lowest seq seen.
    pub min_seq: u64,
    /// Highest seq seen.
    pub max_seq: u64,
}

impl SeqStats {
    /// Seqs between the lowest and highest that have not arrived (yet).
    pub fn missing(&self) -> u64 {
        (self.max_seq - self.min_seq + 1).saturating_sub(self.count)
    }
}

/// What a birth says about the device.
#[derive(Debug, Clone)]
pub struct Identity<'a> {
    /// Model or SKU.
    pub model: &'a str,
    /// Device class.
    pub device_class: &'a str,
    /// Hardware revision.
    pub hw_revision: &'a str,
    /// Manufacturing batch.
    pub batch: &'a str,
    /// Firmware version.
    pub firmware: &'a str,
}

/// Records a liveness change, unless a newer one is already recorded.
pub async fn set_liveness(
    c: &mut AnyConnection,
    device: &str,
    online: bool,
    ts_ms: u64,
    identity: Option<&Identity<'_>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE devices SET online = $2, state_ms = $3,
            model = COALESCE($4, model), device_class = COALESCE($5, device_class),
            hw_revision = COALESCE($6, hw_revision), batch = COALESCE($7, batch),
            firmware = COALESCE($8, firmware)
         WHERE device_id = $1 AND (state_ms IS NULL OR state_ms <= $3)",
    )
    .bind(device)
    .bind(i64::from(online))
    .bind(ts_ms as i64)
    .bind(identity.map(|i| i.model))
    .bind(identity.map(|i| i.device_class))
    .bind(identity.map(|i| i.hw_revision))
    .bind(identity.map(|i| i.batch))
    .bind(identity.map(|i| i.firmware))
    .execute(c)
    .await?;
    Ok(())
}

/// Records a device's latest score.
pub async fn set_score(
    c: &mut AnyConnection,
    device: &str,
    risk: f64,
    alarm: bool,
    scored_ms: u64,
    model_version: &str,
    explanation: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE devices SET risk = $2, risk_alarm = $3, scored_ms = $4, model_version = $5,
            explanation = $6 WHERE device_id = $1",
    )
    .bind(device)
    .bind(risk)
    .bind(i64::from(alarm))
    .bind(scored_ms as i64)
    .bind(model_version)
    .bind(explanation)
    .execute(c)
    .await?;
    Ok(())
}

/// A stored message: channel and payload.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// The channel name.
    pub channel: String,
    /// The payload as received.
    pub payload: String,
}

/// A device's messages from `since_ms` (device time) on, oldest first.
pub async fn messages_since(
    c: &mut AnyConnection,
    device: &str,
    since_ms: u64,
) -> Result<Vec<StoredMessage>, StoreError> {
    let rows = sqlx::query(
        "SELECT channel, payload FROM messages WHERE device_id = $1 AND ts_ms >= $2
         ORDER BY ts_ms, seq",
    )
    .bind(device)
    .bind(since_ms as i64)
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredMessage {
                channel: r.try_get(0)?,
                payload: r.try_get(1)?,
            })
        })
        .collect()
}

/// The registry's commercial facts about a device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registration {
    /// The owner.
    pub customer_id: Option<String>,
    /// Purchase time, ms.
    pub purchased_ms: Option<u64>,
    /// End of warranty, ms.
    pub warranty_until_ms: Option<u64>,
    /// Price, minor units.
    pub price_minor: Option<u64>,
    /// Currency of the price.
    pub currency: Option<String>,
}

/// Reads a device's registration (all unknown for a device never registered).
pub async fn registration(c: &mut AnyConnection, device: &str) -> Result<Registration, StoreError> {
    let row = sqlx::query(
        "SELECT customer_id, purchased_ms, warranty_until_ms, price_minor, currency
         FROM devices WHERE device_id = $1",
    )
    .bind(device)
    .fetch_optional(c)
    .await?;
    let Some(r) = row else {
        return Ok(Registration::default());
    };
    Ok(Registration {
        customer_id: r.try_get(0)?,
        purchased_ms: r.try_get::<Option<i64>, _>(1)?.map(|v| v as u64),
        warranty_until_ms: r.try_get::<Option<i64>, _>(2)?.map(|v| v as u64),
        price_minor: r.try_get::<Option<i64>, _>(3)?.map(|v| v as u64),
        currency: r.try_get(4)?,
    })
}

/// Registers (or updates) a device's owner and purchase terms, as the operator's
/// sales records give them.
pub async fn register(
    store: &Store,
    device: &str,
    tenant: &str,
    reg: &Registration,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO devices (device_id, tenant, first_seen_ms, last_seen_ms, min_seq, max_seq,
            msg_count, customer_id, purchased_ms, warranty_until_ms, price_minor, currency)
         VALUES ($1, $2, 0, 0, 0, 0, 0, $3, $4, $5, $6, $7)
         ON CONFLICT (device_id) DO UPDATE SET customer_id = excluded.customer_id,
            purchased_ms = excluded.purchased_ms, warranty_until_ms = excluded.warranty_until_ms,
            price_minor = excluded.price_minor, currency = excluded.currency",
    )
    .bind(device)
    .bind(tenant)
    .bind(reg.customer_id.as_deref())
    .bind(reg.purchased_ms.map(|v| v as i64))
    .bind(reg.warranty_until_ms.map(|v| v as i64))
    .bind(reg.price_minor.map(|v| v as i64))
    .bind(reg.currency.as_deref())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// When a ticket for this device and problem last closed, and how many tickets the
/// customer (or, without one, the device) got since `since_ms`.
pub async fn contact_history(
    c: &mut AnyConnection,
    device: &str,
    customer: Option<&str>,
    problem: Problem,
    since_ms: u64,
) -> Result<crate::policy::ContactHistory, StoreError> {
    let last: Option<i64> = sqlx::query(
        "SELECT MAX(closed_ms) FROM tickets WHERE device_id = $1 AND problem = $2
         AND closed_ms IS NOT NULL",
    )
    .bind(device)
    .bind(problem.as_str())
    .fetch_one(&mut *c)
    .await?
    .try_get(0)?;
    let count: i64 = match customer {
        Some(cust) => {
            sqlx::query("SELECT COUNT(*) FROM tickets WHERE customer_id = $1 AND opened_ms >= $2")
                .bind(cust)
                .bind(since_ms as i64)
        }
        None => {
            sqlx::query("SELECT COUNT(*) FROM tickets WHERE device_id = $1 AND opened_ms >= $2")
                .bind(device)
                .bind(since_ms as i64)
        }
    }
    .fetch_one(&mut *c)
    .await?
    .try_get(0)?;
    Ok(crate::policy::ContactHistory {
        last_closed_ms: last.map(|v| v as u64),
        contacts_in_window: count as u32,
    })
}

/// A ticket to open.
#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    /// Its public reference.
    pub ticket_ref: &'a str,
    /// The device.
    pub device_id: &'a str,
    /// Its tenant.
    pub tenant: &'a str,
    /// Its owner.
    pub customer_id: Option<&'a str>,
    /// The problem.
    pub problem: Problem,
    /// Priority tier.
    pub tier: Tier,
    /// The remedy offered.
    pub offer_kind: &'a str,
    /// The quote, minor units.
    pub quote_minor: Option<u64>,
    /// Its currency.
    pub currency: Option<&'a str>,
    /// When it opens.
    pub opened_ms: u64,
    /// When it is due.
    pub due_ms: u64,
    /// The risk that opened it.
    pub risk: f64,
    /// The model version that scored.
    pub model_version: &'a str,
    /// Evidence, JSON.
    pub evidence: &'a str,
}

/// Opens a ticket unless one is open for the device and problem; its id, or `None`.
pub async fn open_ticket(
    c: &mut AnyConnection,
    t: &NewTicket<'_>,
) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "INSERT INTO tickets (ticket_ref, device_id, tenant, customer_id, problem, state, tier,
            offer_kind, quote_minor, currency, opened_ms, due_ms, risk, model_version, evidence)
         VALUES ($1, $2, $3, $4, $5, 'opened', $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(t.ticket_ref)
    .bind(t.device_id)
    .bind(t.tenant)
    .bind(t.customer_id)
    .bind(t.problem.as_str())
    .bind(t.tier.as_str())
    .bind(t.offer_kind)
    .bind(t.quote_minor.map(|v| v as i64))
    .bind(t.currency)
    .bind(t.opened_ms as i64)
    .bind(t.due_ms as i64)
    .bind(t.risk)
    .bind(t.model_version)
    .bind(t.evidence)
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.try_get(0)?;
    record_event(
        c,
        id,
        None,
        TicketState::Opened,
        "policy",
        None,
        t.opened_ms,
    )
    .await?;
    Ok(Some(id))
}

/// The open ticket for a device and problem: id, state and tier.
pub async fn open_ticket_for(
    c: &mut AnyConnection,
    device: &str,
    problem: Problem,
) -> Result<Option<(i64, TicketState, Tier)>, StoreError> {
    let row = sqlx::query(
        "SELECT id, state, tier FROM tickets WHERE device_id = $1 AND problem = $2
         AND state IN ('opened', 'offered', 'accepted', 'in_progress')",
    )
    .bind(device)
    .bind(problem.as_str())
    .fetch_optional(c)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get(0)?,
            parse(&r.try_get::<String, _>(1)?)?,
            parse(&r.try_get::<String, _>(2)?)?,
        ))
    })
    .transpose()
}

fn parse<T: FromStr>(s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

/// Moves a ticket to `to`, checking the move against the state machine and against a
/// concurrent move (the update holds only if the ticket is still where it was read).
pub async fn move_ticket(
    c: &mut AnyConnection,
    id: i64,
    to: TicketState,
    actor: &str,
    note: Option<&str>,
    at_ms: u64,
) -> Result<TicketState, StoreError> {
    let from: String = sqlx::query("SELECT state FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::NoTicket(id.to_string()))?
        .try_get(0)?;
    let from: TicketState = parse(&from)?;
    from.move_to(to)?;
    let closed = (!to.is_open()).then_some(at_ms as i64);
    let done = sqlx::query(
        "UPDATE tickets SET state = $2, closed_ms = COALESCE($3, closed_ms) WHERE id = $1 AND state = $4",
    )
    .bind(id)
    .bind(to.as_str())
    .bind(closed)
    .bind(from.as_str())
    .execute(&mut *c)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Corrupt(format!(
            "ticket {id} changed while moving it to {to}"
        )));
    }
    record_event(c, id, Some(from), to, actor, note, at_ms).await?;
    Ok(from)
}

async fn record_event(
    c: &mut AnyConnection,
    id: i64,
    from: Option<TicketState>,
    to: TicketState,
    actor: &str,
    note: Option<&str>,
    at_ms: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ticket_events (ticket_id, at_ms, from_state, to_state, actor, note)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(at_ms as i64)
    .bind(from.map(|f| f.as_str()))
    .bind(to.as_str())
    .bind(actor)
    .bind(note)
    .execute(c)
    .await?;
    Ok(())
}

/// Queues a command for a device (sent by the command worker).
#[allow(clippy::too_many_arguments)]
pub async fn queue_command(
    c: &mut AnyConnection,
    command_id: &str,
    ticket_id: Option<i64>,
    device: &str,
    topic: &str,
    payload: &str,
    created_ms: u64,
    expires_ms: Option<u64>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO commands (command_id, ticket_id, device_id, topic, payload, created_ms,
            expires_ms, next_wall_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
    )
    .bind(command_id)
    .bind(ticket_id)
    .bind(device)
    .bind(topic)
    .bind(payload)
    .bind(created_ms as i64)
    .bind(expires_ms.map(|v| v as i64))
    .execute(c)
    .await?;
    Ok(())
}

/// Records a device's answer to a command; the command's ticket, if it has one, and
/// whether the answer was new.
pub async fn command_answered(
    c: &mut AnyConnection,
    command_id: &str,
    device: &str,
    status: &str,
    at_ms: u64,
) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "UPDATE commands SET status = $3, answered_ms = $4
         WHERE command_id = $1 AND device_id = $2 RETURNING ticket_id",
    )
    .bind(command_id)
    .bind(device)
    .bind(status)
    .bind(at_ms as i64)
    .fetch_optional(c)
    .await?;
    Ok(match row {
        Some(r) => r.try_get::<Option<i64>, _>(0)?,
        None => None,
    })
}

/// A ticket's current state.
pub async fn ticket_state(c: &mut AnyConnection, id: i64) -> Result<TicketState, StoreError> {
    let s: String = sqlx::query("SELECT state FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?
        .ok_or_else(|| StoreError::NoTicket(id.to_string()))?
        .try_get(0)?;
    parse(&s)
}

/// Queues a webhook delivery.
pub async fn queue_webhook(
    c: &mut AnyConnection,
    ticket_id: i64,
    url: &str,
    body: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_outbox (ticket_id, url, body, next_wall_ms) VALUES ($1, $2, $3, 0)",
    )
    .bind(ticket_id)
    .bind(url)
    .bind(body)
    .execute(c)
    .await?;
    Ok(())
}

/// Keeps a rejected message with its reason.
pub async fn dead_letter(
    c: &mut AnyConnection,
    received_ms: u64,
    topic: &str,
    payload: &[u8],
    reason: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dead_letters (received_ms, topic, payload, reason, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(received_ms as i64)
    .bind(topic)
    .bind(payload.to_vec())
    .bind(reason)
    .bind(detail)
    .execute(c)
    .await?;
    Ok(())
}

/// A ticket as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TicketRow {
    /// Row id.
    pub id: i64,
    /// Public reference.
    pub ticket_ref: String,
    /// The device.
    pub device_id: String,
    /// Its owner.
    pub customer_id: Option<String>,
    /// The problem.
    pub problem: String,
    /// Where it stands.
    pub state: TicketState,
    /// Priority tier.
    pub tier: Tier,
    /// The remedy offered.
    pub offer_kind: String,
    /// The quote, minor units.
    pub quote_minor: Option<i64>,
    /// Its currency.
    pub currency: Option<String>,
    /// When it opened.
    pub opened_ms: i64,
    /// When it is due.
    pub due_ms: i64,
    /// When it closed.
    pub closed_ms: Option<i64>,
    /// The risk that opened it.
    pub risk: f64,
    /// The model version.
    pub model_version: String,
    /// The evidence, JSON.
    pub evidence: String,
}

fn ticket_row(r: &AnyRow) -> Result<TicketRow, StoreError> {
    Ok(TicketRow {
        id: r.try_get(0)?,
        ticket_ref: r.try_get(1)?,
        device_id: r.try_get(2)?,
        customer_id: r.try_get(3)?,
        problem: r.try_get(4)?,
        state: parse(&r.try_get::<String, _>(5)?)?,
        tier: parse(&r.try_get::<String, _>(6)?)?,
        offer_kind: r.try_get(7)?,
        quote_minor: r.try_get(8)?,
        currency: r.try_get(9)?,
        opened_ms: r.try_get(10)?,
        due_ms: r.try_get(11)?,
        closed_ms: r.try_get(12)?,
        risk: r.try_get(13)?,
        model_version: r.try_get(14)?,
        evidence: r.try_get(15)?,
    })
}

impl Store {
    /// Every ticket, oldest first.
    pub async fn tickets(&self) -> Result<Vec<TicketRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ticket_ref, device_id, customer_id, problem, state, tier, offer_kind,
                quote_minor, currency, opened_ms, due_ms, closed_ms, risk, model_version, evidence
             FROM tickets ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ticket_row).collect()
    }

    /// A ticket's history: (at, from, to, actor).
    pub async fn ticket_events(
        &self,
        id: i64,
    ) -> Result<Vec<(i64, Option<String>, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, from_state, to_state, actor FROM ticket_events WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }

    /// Accepted messages in all.
    pub async fn message_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM messages")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }

    /// Every accepted (device, seq), sorted.
    pub async fn message_keys(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query("SELECT device_id, seq FROM messages ORDER BY device_id, seq")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? as u64)))
            .collect()
    }

    /// Dead letters: (topic, reason, detail), oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query("SELECT topic, reason, detail FROM dead_letters ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// A device's liveness and sequence accounting: (online, stats).
    pub async fn device_status(
        &self,
        device: &str,
    ) -> Result<Option<(bool, SeqStats)>, StoreError> {
        let row = sqlx::query(
            "SELECT online, msg_count, min_seq, max_seq FROM devices WHERE device_id = $1",
        )
        .bind(device)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get::<i64, _>(0)? != 0,
                SeqStats {
                    count: r.try_get::<i64, _>(1)? as u64,
                    min_seq: r.try_get::<i64, _>(2)? as u64,
                    max_seq: r.try_get::<i64, _>(3)? as u64,
                },
            ))
        })
        .transpose()
    }

    /// Commands: (command_id, device, attempts, status), oldest first.
    pub async fn commands(&self) -> Result<Vec<(String, String, i64, Option<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT command_id, device_id, attempts, status FROM commands ORDER BY created_ms, command_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_every_value() {
        let mut s = String::new();
        super::push_placeholders(&mut s, 2, 3);
        assert_eq!(s, "($1, $2, $3), ($4, $5, $6)");
    }
}
