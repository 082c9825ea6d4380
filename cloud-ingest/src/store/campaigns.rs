//! `campaigns` and `campaign_members`: a campaign proposed from a flag with its members,
//! decided by a person at the version they saw, and each member's outcome as the
//! rollout works it, with the progress its tickets make.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use sqlx::{AnyConnection, Row};

use super::users::{audit, AuditEntry};
use super::{parse, registry, tickets, Store, StoreError};
use crate::campaigns::proposal::{self, MemberFacts, Proposal};
use crate::campaigns::{self, CampaignState, MemberStatus, MemberTicket, Progress, Verdict};
use crate::cohorts::watch::{Flag, FlagKind};
use crate::policy::{PolicyConfig, Problem, RepairCosts};
use crate::tickets::work::Outcome;

/// A campaign as stored, with its progress.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Campaign {
    /// Its id.
    pub id: i64,
    /// The flag it was proposed from.
    pub flag_id: i64,
    /// What it is about, in words.
    pub title: String,
    /// The problem its offers are about.
    pub problem: Problem,
    /// Where it stands.
    pub state: CampaignState,
    /// Bumped by every change.
    pub version: i64,
    /// The figures when it was proposed.
    pub proposal: Proposal,
    /// When it was proposed (service clock), ms.
    pub proposed_ms: i64,
    /// Who proposed it.
    pub proposed_by: String,
    /// When it was decided, ms.
    pub decided_ms: Option<i64>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// The decider's note.
    pub note: Option<String>,
    /// How far it has got.
    pub progress: Progress,
}

/// One member of a campaign.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The device.
    pub device_id: String,
    /// What the rollout did.
    pub status: MemberStatus,
    /// Its ticket (opened for the campaign, or attached).
    pub ticket_id: Option<i64>,
    /// That ticket's state.
    pub ticket_state: Option<String>,
    /// Why it was held back.
    pub reason: Option<String>,
}

/// A member the rollout has still to work.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMember {
    /// The campaign.
    pub campaign_id: i64,
    /// Its title (the offer's evidence says it).
    pub title: String,
    /// Its problem.
    pub problem: Problem,
    /// The device.
    pub device_id: String,
}

/// The problem a flag's campaign offers a remedy for: a firmware regression's restarts
/// are a stability problem.
pub fn problem_of(f: &Flag) -> Problem {
    f.problem.unwrap_or(Problem::Stability)
}

/// The title of a flag's campaign.
pub fn title_of(f: &Flag) -> String {
    let what = match f.kind {
        FlagKind::Model => "model",
        FlagKind::Batch => "batch",
        FlagKind::Firmware | FlagKind::FirmwareRegression => "firmware",
        FlagKind::PurchaseMonth => "bought in",
    };
    let problem = f.problem.map_or("unexpected restarts", Problem::as_str);
    match f.window_days {
        Some(w) => format!("{problem}: {what} {} (first {w} days)", f.cohort),
        None => format!("{problem}: {what} {}", f.cohort),
    }
}

/// The devices a flag is about.
async fn members_of(c: &mut AnyConnection, f: &Flag) -> Result<Vec<String>, StoreError> {
    let unknown = f.cohort == crate::cohorts::table::UNKNOWN;
    let column = match f.kind {
        FlagKind::Model => "model",
        FlagKind::Batch => "batch",
        FlagKind::Firmware | FlagKind::FirmwareRegression => "firmware",
        FlagKind::PurchaseMonth => "purchased_ms",
    };
    let rows = if unknown {
        let sql =
            format!("SELECT device_id FROM devices WHERE {column} IS NULL ORDER BY device_id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *c)
            .await?
    } else if f.kind == FlagKind::PurchaseMonth {
        let (from, to) = month_range(&f.cohort)?;
        sqlx::query(
            "SELECT device_id FROM devices WHERE purchased_ms >= $1 AND purchased_ms < $2
             ORDER BY device_id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&mut *c)
        .await?
    } else {
        let sql = format!("SELECT device_id FROM devices WHERE {column} = $1 ORDER BY device_id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.cohort.as_str())
            .fetch_all(&mut *c)
            .await?
    };
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// The first millisecond of month `2026-03` and of the month after.
fn month_range(month: &str) -> Result<(i64, i64), StoreError> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map_err(|_| StoreError::Corrupt(format!("purchase month {month:?}")))?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .expect("the first of a month exists");
    let ms = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_millis()
    };
    Ok((ms(first), ms(next)))
}

/// What the policy needs about each of `devices` for `problem`.
pub async fn member_facts(
    c: &mut AnyConnection,
    devices: &[&str],
    problem: Problem,
    policy: &PolicyConfig,
    now_ms: u64,
) -> Result<Vec<MemberFacts>, StoreError> {
    let mut regs = registry::registrations(c, devices).await?;
    let mut open = tickets::open_for(c, devices).await?;
    let since = now_ms.saturating_sub(u64::from(policy.contact_window_days) * 86_400_000);
    let mut out = Vec::with_capacity(devices.len());
    for &d in devices {
        let registration = regs.remove(d).unwrap_or_default();
        let contacts =
            tickets::contact_history(c, d, registration.customer_id.as_deref(), problem, since)
                .await?;
        let open_ticket = open
            .remove(d)
            .unwrap_or_default()
            .into_iter()
            .find(|t| t.problem == problem)
            .map(|t| t.id);
        out.push(MemberFacts {
            device_id: d.to_owned(),
            registration,
            open_ticket,
            contacts,
        });
    }
    Ok(out)
}

const CAMPAIGN_COLUMNS: &str = "SELECT id, flag_id, title, problem, state, version, proposal,
    proposed_ms, proposed_by, decided_ms, decided_by, note FROM campaigns";

fn campaign_row(r: &sqlx::any::AnyRow) -> Result<Campaign, StoreError> {
    let proposal: String = r.try_get(6)?;
    Ok(Campaign {
        id: r.try_get(0)?,
        flag_id: r.try_get(1)?,
        title: r.try_get(2)?,
        problem: parse(&r.try_get::<String, _>(3)?)?,
        state: parse(&r.try_get::<String, _>(4)?)?,
        version: r.try_get(5)?,
        proposal: serde_json::from_str(&proposal)
            .map_err(|e| StoreError::Corrupt(format!("campaign proposal: {e}")))?,
        proposed_ms: r.try_get(7)?,
        proposed_by: r.try_get(8)?,
        decided_ms: r.try_get(9)?,
        decided_by: r.try_get(10)?,
        note: r.try_get(11)?,
        progress: Progress::default(),
    })
}

impl Store {
    /// Proposes a campaign from open flag `flag_id` (by `by`, audited): its members are
    /// the cohort's devices now, its figures the policy's for each. `None` without such a
    /// flag; a flag that is not open is a conflict.
    pub async fn propose_campaign(
        &self,
        flag_id: i64,
        by: &str,
        policy: &PolicyConfig,
        now_ms: u64,
    ) -> Result<Option<Campaign>, StoreError> {
        let Some(flag) = self.cohort_flag(flag_id).await? else {
            return Ok(None);
        };
        if flag.status != "open" {
            return Err(StoreError::Conflict(format!(
                "flag {flag_id} is {}: only an open flag proposes a campaign",
                flag.status
            )));
        }
        let mut tx = self.begin().await?;
        let problem = problem_of(&flag.flag);
        let devices = members_of(&mut tx, &flag.flag).await?;
        let ids: Vec<&str> = devices.iter().map(String::as_str).collect();
        let facts = member_facts(&mut tx, &ids, problem, policy, now_ms).await?;
        let proposal = proposal::propose(problem, &facts, policy, protocol::Timestamp(now_ms));
        let taken = sqlx::query(
            "UPDATE cohort_flags SET status = 'campaign' WHERE id = $1 AND status = 'open'",
        )
        .bind(flag_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            return Err(StoreError::Conflict(format!(
                "flag {flag_id} was decided meanwhile"
            )));
        }
        let title = title_of(&flag.flag);
        let body = serde_json::to_string(&proposal).expect("a proposal serialises");
        let id: i64 = sqlx::query(
            "INSERT INTO campaigns (flag_id, title, problem, state, proposal, proposed_ms, proposed_by)
             VALUES ($1, $2, $3, 'proposed', $4, $5, $6) RETURNING id",
        )
        .bind(flag_id)
        .bind(title.as_str())
        .bind(problem.as_str())
        .bind(body.as_str())
        .bind(now_ms as i64)
        .bind(by)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        for d in &devices {
            sqlx::query(
                "INSERT INTO campaign_members (campaign_id, device_id, status, updated_ms)
                 VALUES ($1, $2, 'pending', $3)",
            )
            .bind(id)
            .bind(d.as_str())
            .bind(now_ms as i64)
            .execute(&mut *tx)
            .await?;
        }
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: now_ms as i64,
                user_name: by.to_owned(),
                action: "campaign.propose".into(),
                subject: format!("campaign:{id}"),
                before: None,
                after: Some(body),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(self
            .campaign(id, &policy.repair_cost_minor)
            .await?
            .map(|(c, _)| c))
    }

    /// Decides proposed campaign `id` at `version` (by `by`, audited). `None` without such
    /// a campaign; a stale version or a campaign already decided is a conflict. A rejected
    /// campaign's members are dropped; an approved one's wait for the rollout.
    pub async fn decide_campaign(
        &self,
        id: i64,
        verdict: Verdict,
        version: i64,
        by: &str,
        note: Option<&str>,
        now_ms: u64,
    ) -> Result<Option<CampaignState>, StoreError> {
        let mut tx = self.begin().await?;
        let sql = format!("{CAMPAIGN_COLUMNS} WHERE id = $1");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let c = campaign_row(&row)?;
        if c.version != version {
            return Err(StoreError::Conflict(format!(
                "campaign {id} is at version {}, not {version}: it changed meanwhile; reload it",
                c.version
            )));
        }
        let to =
            campaigns::decide(c.state, verdict).map_err(|e| StoreError::Conflict(e.to_string()))?;
        sqlx::query(
            "UPDATE campaigns SET state = $2, version = version + 1, decided_ms = $3,
                decided_by = $4, note = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(to.as_str())
        .bind(now_ms as i64)
        .bind(by)
        .bind(note)
        .execute(&mut *tx)
        .await?;
        if to == CampaignState::Rejected {
            sqlx::query(
                "UPDATE campaign_members SET status = 'dropped', updated_ms = $2
                 WHERE campaign_id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(now_ms as i64)
            .execute(&mut *tx)
            .await?;
        }
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: now_ms as i64,
                user_name: by.to_owned(),
                action: format!(
                    "campaign.{}",
                    match verdict {
                        Verdict::Approve => "approve",
                        Verdict::Reject => "reject",
                    }
                ),
                subject: format!("campaign:{id}"),
                before: Some(c.state.as_str().to_owned()),
                after: Some(to.as_str().to_owned()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(to))
    }

    /// Every campaign, newest first, each with its progress.
    pub async fn campaigns(&self, repair: &RepairCosts) -> Result<Vec<Campaign>, StoreError> {
        let sql = format!("{CAMPAIGN_COLUMNS} ORDER BY id DESC");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut c = campaign_row(r)?;
            let members = self.members(c.id).await?;
            c.progress = self.progress(&c, &members, repair).await?;
            out.push(c);
        }
        Ok(out)
    }

    /// One campaign with its members.
    pub async fn campaign(
        &self,
        id: i64,
        repair: &RepairCosts,
    ) -> Result<Option<(Campaign, Vec<Member>)>, StoreError> {
        let sql = format!("{CAMPAIGN_COLUMNS} WHERE id = $1");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let mut c = campaign_row(&row)?;
        let members = self.members(id).await?;
        c.progress = self.progress(&c, &members, repair).await?;
        Ok(Some((c, members)))
    }

    async fn members(&self, id: i64) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.device_id, m.status, m.ticket_id, t.state, m.reason
             FROM campaign_members m LEFT JOIN tickets t ON t.id = m.ticket_id
             WHERE m.campaign_id = $1 ORDER BY m.device_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    device_id: r.try_get(0)?,
                    status: parse(&r.try_get::<String, _>(1)?)?,
                    ticket_id: r.try_get(2)?,
                    ticket_state: r.try_get(3)?,
                    reason: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Sums the members' tickets: reached (shown or answered), accepted, faults
    /// confirmed, and what they cost (a confirmed fault's repair estimate, a trade-in's
    /// settled price).
    async fn progress(
        &self,
        c: &Campaign,
        members: &[Member],
        repair: &RepairCosts,
    ) -> Result<Progress, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, t.outcome,
                EXISTS (SELECT 1 FROM ticket_events e WHERE e.ticket_id = t.id
                    AND e.to_state IN ('offered', 'accepted', 'declined')),
                EXISTS (SELECT 1 FROM ticket_events e WHERE e.ticket_id = t.id
                    AND e.to_state = 'accepted'),
                (SELECT final_minor FROM tradeins r WHERE r.ticket_id = t.id AND r.settled_ms IS NOT NULL)
             FROM campaign_members m JOIN tickets t ON t.id = m.ticket_id
             WHERE m.campaign_id = $1",
        )
        .bind(c.id)
        .fetch_all(self.pool())
        .await?;
        let mut tickets: HashMap<i64, MemberTicket> = HashMap::new();
        for r in &rows {
            let outcome: Option<Outcome> = r
                .try_get::<Option<String>, _>(1)?
                .map(|o| parse(&o))
                .transpose()?;
            let confirmed = outcome.is_some_and(Outcome::confirms_fault);
            let settled: Option<i64> = r.try_get(4)?;
            let cost = match (confirmed, settled) {
                (_, Some(price)) => price.max(0) as u64,
                (true, None) => repair.of(c.problem),
                (false, None) => 0,
            };
            tickets.insert(
                r.try_get(0)?,
                MemberTicket {
                    reached: r
                        .try_get::<bool, _>(2)
                        .or_else(|_| r.try_get::<i64, _>(2).map(|v| v != 0))?,
                    accepted: r
                        .try_get::<bool, _>(3)
                        .or_else(|_| r.try_get::<i64, _>(3).map(|v| v != 0))?,
                    fault_confirmed: confirmed,
                    cost_minor: cost,
                },
            );
        }
        Ok(campaigns::progress(members.iter().map(|m| {
            (m.status, m.ticket_id.and_then(|id| tickets.get(&id)))
        })))
    }

    /// Up to `limit` members of approved campaigns still to be worked, oldest campaign
    /// first.
    pub async fn pending_members(&self, limit: usize) -> Result<Vec<PendingMember>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.campaign_id, c.title, c.problem, m.device_id
             FROM campaign_members m JOIN campaigns c ON c.id = m.campaign_id
             WHERE m.status = 'pending' AND c.state = 'approved'
             ORDER BY m.campaign_id, m.device_id LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingMember {
                    campaign_id: r.try_get(0)?,
                    title: r.try_get(1)?,
                    problem: parse(&r.try_get::<String, _>(2)?)?,
                    device_id: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Whether any campaign is approved (and not yet rolled out).
    pub async fn any_approved_campaign(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM campaigns WHERE state = 'approved'")
            .fetch_one(self.pool())
            .await?
            .try_get(0)?;
        Ok(n > 0)
    }

    /// Marks approved campaigns with no member left to work as rolled out.
    pub async fn finish_rollouts(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE campaigns SET state = 'rolled_out', version = version + 1
             WHERE state = 'approved' AND NOT EXISTS (SELECT 1 FROM campaign_members m
                WHERE m.campaign_id = campaigns.id AND m.status = 'pending')",
        )
        .execute(self.pool())
        .await?
        .rows_affected())
    }
}

/// Records what the rollout did for a member (and links its ticket to the campaign).
pub async fn settle_member(
    c: &mut AnyConnection,
    campaign_id: i64,
    device_id: &str,
    status: MemberStatus,
    ticket_id: Option<i64>,
    reason: Option<&str>,
    now_ms: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE campaign_members SET status = $3, ticket_id = $4, reason = $5, updated_ms = $6
         WHERE campaign_id = $1 AND device_id = $2",
    )
    .bind(campaign_id)
    .bind(device_id)
    .bind(status.as_str())
    .bind(ticket_id)
    .bind(reason)
    .bind(now_ms as i64)
    .execute(&mut *c)
    .await?;
    if let Some(t) = ticket_id {
        sqlx::query("UPDATE tickets SET campaign_id = $2 WHERE id = $1")
            .bind(t)
            .bind(campaign_id)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// The tenant and schema a device's commands are written for.
pub async fn device_target(
    c: &mut AnyConnection,
    device_id: &str,
) -> Result<Option<(String, u32)>, StoreError> {
    let row = sqlx::query("SELECT tenant, epoch FROM devices WHERE device_id = $1")
        .bind(device_id)
        .fetch_optional(&mut *c)
        .await?;
    row.map(|r| {
        let epoch: i64 = r.try_get(1)?;
        Ok((
            r.try_get(0)?,
            if epoch > 0 {
                protocol::envelope::EPOCH_SCHEMA
            } else {
                1
            },
        ))
    })
    .transpose()
}
