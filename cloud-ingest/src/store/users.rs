//! `users`, `api_tokens` and `audit_log`: the desks' people, their tokens (hashes
//! only), and every change they make.

use sqlx::Row;

use super::{parse, Store, StoreError};
use crate::desk::auth::{self, Role, User};

/// One change a person made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When.
    pub at_ms: i64,
    /// Who.
    pub user_name: String,
    /// What (`ticket.claim`, `user.add`...).
    pub action: String,
    /// What it was done to (`ticket:12`, `user:ana`).
    pub subject: String,
    /// The subject before, JSON.
    pub before: Option<String>,
    /// The subject after, JSON.
    pub after: Option<String>,
}

fn user(r: &sqlx::any::AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        role: parse::<Role>(&r.try_get::<String, _>(2)?)?,
    })
}

impl Store {
    /// Adds a user and issues its first token, in one transaction; the token (shown
    /// once: the store keeps its hash).
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        by: &str,
        now_ms: u64,
    ) -> Result<(User, String), StoreError> {
        auth::check_name(name).map_err(StoreError::Invalid)?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO users (name, role, created_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING RETURNING id, name, role",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(now_ms as i64)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Invalid(format!("a user called {name:?} exists already")))?;
        let u = user(&row)?;
        let token = auth::new_token();
        sqlx::query("INSERT INTO api_tokens (token_hash, user_id, created_ms) VALUES ($1, $2, $3)")
            .bind(auth::token_hash(&token))
            .bind(u.id)
            .bind(now_ms as i64)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: now_ms as i64,
                user_name: by.to_owned(),
                action: "user.add".into(),
                subject: format!("user:{name}"),
                before: None,
                after: Some(serde_json::to_string(&u).expect("a user serialises")),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((u, token))
    }

    /// The user a token belongs to, if it is valid at `now_ms`.
    pub async fn user_by_token(
        &self,
        token: &str,
        now_ms: u64,
    ) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND u.disabled = 0
               AND (t.expires_ms IS NULL OR t.expires_ms > $2)",
        )
        .bind(auth::token_hash(token))
        .bind(now_ms as i64)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user).transpose()
    }

    /// Opens a browser session for `user` until `expires_ms`: a new token of its own,
    /// stored hashed like any other; the token (the cookie's value).
    pub async fn open_session(
        &self,
        user: &User,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<String, StoreError> {
        let token = auth::new_token();
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, user_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(auth::token_hash(&token))
        .bind(user.id)
        .bind(now_ms as i64)
        .bind(expires_ms as i64)
        .execute(self.pool())
        .await?;
        Ok(token)
    }

    /// Ends a browser session (only one with an expiry: API tokens stay).
    pub async fn close_session(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1 AND expires_ms IS NOT NULL")
            .bind(auth::token_hash(token))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query("SELECT id, name, role FROM users ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(user).collect()
    }

    /// The audit entries about `subject` (all when `None`), newest first, at most `limit`.
    pub async fn audit_log(
        &self,
        subject: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        const COLS: &str = "SELECT at_ms, user_name, action, subject, before, after FROM audit_log";
        let rows = match subject {
            Some(subject) => {
                let sql = format!("{COLS} WHERE subject = $1 ORDER BY id DESC LIMIT $2");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(subject)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                let sql = format!("{COLS} ORDER BY id DESC LIMIT $1");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at_ms: r.try_get(0)?,
                    user_name: r.try_get(1)?,
                    action: r.try_get(2)?,
                    subject: r.try_get(3)?,
                    before: r.try_get(4)?,
                    after: r.try_get(5)?,
                })
            })
            .collect()
    }
}

/// Writes an audit entry (in the transaction of the change it records).
pub async fn audit(c: &mut sqlx::AnyConnection, e: &AuditEntry) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at_ms, user_name, action, subject, before, after)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(e.at_ms)
    .bind(e.user_name.as_str())
    .bind(e.action.as_str())
    .bind(e.subject.as_str())
    .bind(e.before.as_deref())
    .bind(e.after.as_deref())
    .execute(c)
    .await?;
    Ok(())
}
