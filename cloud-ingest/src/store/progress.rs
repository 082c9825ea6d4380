//! `progress_links` and `ticket_ratings`: the customer's side of a ticket. A link is a
//! random token kept only as its hash, opening one ticket until it expires; the
//! customer's answer moves the ticket as the device's acknowledgement does and stops
//! the offer on the device; a resolved ticket takes one rating.

use protocol::command::{OfferKind, WithdrawReason};
use sqlx::Row;

use super::outbox::{self, NewCommand};
use super::tickets::{self, TicketMove};
use super::users::{audit, AuditEntry};
use super::{parse, Store, StoreError};
use crate::desk::auth;
use crate::policy::offer;
use crate::tickets::progress::{self, Answer, AnswerRefused, Rating, RatingError, Stars};
use crate::tickets::TicketState;

/// The audit log's name for the customer acting through their link.
pub const CUSTOMER: &str = "customer";

/// A progress link as issued: the URL path's token (shown once) and its expiry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct IssuedLink {
    /// The token: the page is `/progress/{token}`.
    pub token: String,
    /// When it stops working, ms since the epoch.
    pub expires_ms: i64,
}

/// The offer as the device showed it (read back from its command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferText {
    /// The headline.
    pub title: String,
    /// The text.
    pub message: String,
    /// Answer by, ms.
    pub respond_by_ms: Option<i64>,
}

/// A stored rating.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StoredRating {
    /// What the customer said.
    #[serde(flatten)]
    pub rating: Rating,
    /// When.
    pub rated_ms: i64,
}

impl Store {
    /// Issues a progress link for ticket `id`, valid for `valid_ms`, recorded in the
    /// audit log as done by `by`.
    pub async fn issue_progress_link(
        &self,
        id: i64,
        by: &str,
        now_ms: u64,
        valid_ms: u64,
    ) -> Result<IssuedLink, StoreError> {
        let mut tx = self.begin().await?;
        tickets::state(&mut tx, id).await?;
        let token = auth::random_token(auth::PROGRESS_PREFIX);
        let expires_ms = now_ms.saturating_add(valid_ms) as i64;
        sqlx::query(
            "INSERT INTO progress_links (token_hash, ticket_id, created_ms, expires_ms, created_by)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(auth::token_hash(&token))
        .bind(id)
        .bind(now_ms as i64)
        .bind(expires_ms)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: now_ms as i64,
                user_name: by.to_owned(),
                action: "ticket.progress_link".into(),
                subject: format!("ticket:{id}"),
                before: None,
                after: Some(serde_json::json!({ "expires_ms": expires_ms }).to_string()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedLink { token, expires_ms })
    }

    /// The ticket a progress token opens at `now_ms`: `None` when the token is unknown
    /// or expired (the page does not say which).
    pub async fn progress_ticket(
        &self,
        token: &str,
        now_ms: u64,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT ticket_id FROM progress_links WHERE token_hash = $1 AND expires_ms > $2",
        )
        .bind(auth::token_hash(token))
        .bind(now_ms as i64)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| r.try_get(0).map_err(StoreError::from))
            .transpose()
    }

    /// The offer of ticket `id` as its command carried it, if it has one.
    pub async fn offer_text(&self, id: i64) -> Result<Option<OfferText>, StoreError> {
        let row = sqlx::query(
            "SELECT c.payload FROM commands c JOIN tickets t ON t.id = c.ticket_id
             WHERE t.id = $1 AND c.command_id = 'offer-' || t.ticket_ref",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let payload: String = row.try_get(0)?;
        let cmd: protocol::command::Command = serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("offer command of ticket {id}: {e}")))?;
        Ok(match cmd.body {
            protocol::command::CommandBody::Offer(o) => Some(OfferText {
                title: o.title,
                message: o.message,
                respond_by_ms: o.respond_by_ts_ms.map(|t| t.0 as i64),
            }),
            _ => None,
        })
    }

    /// The customer's answer to ticket `id`'s offer: the ticket moves as the device's
    /// acknowledgement would move it, the offer stops being sent (and a device that
    /// reads schema 2 is told it is withdrawn), in one transaction; the state it ends
    /// in, or why the answer is refused.
    pub async fn customer_answer(
        &self,
        id: i64,
        answer: Answer,
        now_ms: u64,
    ) -> Result<Result<TicketState, AnswerRefused>, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT t.state, t.offer_kind, t.ticket_ref, t.device_id, t.tenant,
                    COALESCE(d.epoch, 0)
             FROM tickets t LEFT JOIN devices d ON d.device_id = t.device_id WHERE t.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NoTicket(id.to_string()))?;
        let state: TicketState = parse(&row.try_get::<String, _>(0)?)?;
        let kind: String = row.try_get(1)?;
        let offer_kind = OfferKind::from_name(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown offer kind {kind:?}")))?;
        let (ticket_ref, device, tenant): (String, String, String) =
            (row.try_get(2)?, row.try_get(3)?, row.try_get(4)?);
        let epoch: i64 = row.try_get(5)?;
        let moves = match progress::answer(state, answer, offer_kind) {
            Ok(m) => m,
            Err(refused) => return Ok(Err(refused)),
        };
        let mut from = state;
        for (to, actor, note) in moves {
            tickets::apply_move(
                &mut tx,
                &TicketMove {
                    ticket_id: id,
                    from,
                    to,
                    actor,
                    note,
                    at_ms: now_ms,
                },
            )
            .await?;
            from = to;
        }
        let offer_id = offer::offer_command_id(&ticket_ref);
        let withdrawn = outbox::withdraw_unanswered(&mut tx, &offer_id, now_ms).await?;
        // A device that may show the offer is told, for as long as the offer was valid.
        if let Some(expires_ms) = withdrawn.filter(|_| epoch != 0) {
            let valid_hours = expires_ms.map_or(24 * 7, |e| {
                e.saturating_sub(now_ms).div_ceil(3_600_000).max(1)
            });
            let w = offer::withdraw_command(
                &device,
                &tenant,
                &ticket_ref,
                WithdrawReason::Closed,
                protocol::Timestamp(now_ms),
                u32::try_from(valid_hours).unwrap_or(u32::MAX),
            )
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
            outbox::queue_command(
                &mut tx,
                &NewCommand {
                    command_id: w.command_id.as_str().to_owned(),
                    ticket_id: None,
                    device_id: device.clone(),
                    topic: w.topic,
                    payload: w.payload,
                    created_ms: now_ms,
                    expires_ms: Some(w.expires.0),
                    after_command: None,
                },
            )
            .await?;
        }
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: now_ms as i64,
                user_name: CUSTOMER.into(),
                action: format!(
                    "ticket.customer_{}",
                    match answer {
                        Answer::Accept => "accept",
                        Answer::Decline => "decline",
                    }
                ),
                subject: format!("ticket:{id}"),
                before: Some(serde_json::json!({ "state": state }).to_string()),
                after: Some(serde_json::json!({ "state": from }).to_string()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(from))
    }

    /// Stores the customer's rating of ticket `id`: once, and only once it is resolved.
    pub async fn rate_ticket(
        &self,
        id: i64,
        rating: &Rating,
        now_ms: u64,
    ) -> Result<Result<(), RatingError>, StoreError> {
        let mut tx = self.begin().await?;
        let state = tickets::state(&mut tx, id).await?;
        if let Err(e) = progress::may_rate(state) {
            return Ok(Err(e));
        }
        let done = sqlx::query(
            "INSERT INTO ticket_ratings (ticket_id, result, speed, service, comment, rated_ms)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ticket_id) DO NOTHING",
        )
        .bind(id)
        .bind(i64::from(rating.result.get()))
        .bind(i64::from(rating.speed.get()))
        .bind(i64::from(rating.service.get()))
        .bind(rating.comment.as_deref())
        .bind(now_ms as i64)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(Err(RatingError::AlreadyRated));
        }
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: now_ms as i64,
                user_name: CUSTOMER.into(),
                action: "ticket.rating".into(),
                subject: format!("ticket:{id}"),
                before: None,
                after: Some(serde_json::to_string(rating).expect("serialises")),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Ticket `id`'s rating, if the customer gave one.
    pub async fn ticket_rating(&self, id: i64) -> Result<Option<StoredRating>, StoreError> {
        let row = sqlx::query(
            "SELECT result, speed, service, comment, rated_ms FROM ticket_ratings WHERE ticket_id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let stars = |i: usize| -> Result<Stars, StoreError> {
            let v: i64 = r.try_get(i)?;
            u8::try_from(v)
                .ok()
                .and_then(|v| Stars::try_from(v).ok())
                .ok_or_else(|| StoreError::Corrupt(format!("rating {v} of ticket {id}")))
        };
        Ok(Some(StoredRating {
            rating: Rating {
                result: stars(0)?,
                speed: stars(1)?,
                service: stars(2)?,
                comment: r.try_get(3)?,
            },
            rated_ms: r.try_get(4)?,
        }))
    }
}
