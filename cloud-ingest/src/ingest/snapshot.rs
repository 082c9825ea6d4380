//! What planning reads from the store, inside the batch's transaction: the
//! [`Snapshot`] of a batch's devices before [`plan::observe`], and each candidate's
//! [`DeviceContext`] before [`plan::decide`]. Reads only.

use std::collections::HashMap;

use protocol::{Message, Timestamp};
use sqlx::AnyConnection;

use super::decode::Accepted;
use super::epochs;
use super::plan::{self, Candidate, DeviceContext, Snapshot};
use crate::policy::PolicyConfig;
use crate::score::FeatureCache;
use crate::store::{devices, features, messages, outbox, registry, tickets, Backend, StoreError};

/// Reads the snapshot of the batch's devices (the batch in device order, repeats
/// within it dropped; what the store already holds may still be in it).
pub async fn devices(
    c: &mut AnyConnection,
    backend: Backend,
    fresh: &[Accepted<'_>],
    cache: &FeatureCache,
) -> Result<Snapshot, StoreError> {
    let groups: Vec<&[Accepted<'_>]> = fresh.chunk_by(|a, b| a.device() == b.device()).collect();
    let ids: Vec<&str> = groups.iter().map(|g| g[0].device()).collect();
    let rows = devices::snapshot(c, backend, &ids).await?;
    // Another epoch than a device's current one is rare (a reset, or a late message of
    // an earlier run): only then are its known epochs read.
    let other: Vec<&str> = groups
        .iter()
        .filter(|g| epochs::needs_known(rows.get(g[0].device()), g))
        .map(|g| g[0].device())
        .collect();
    let known_epochs = if other.is_empty() {
        HashMap::new()
    } else {
        devices::known_epochs(c, &other).await?
    };
    let count = |device: &str| rows.get(device).map_or(0, |r| r.stats.count);
    // Devices the cache is out of step with: their stored state, or failing that (none
    // yet, another feature schema) their messages.
    let behind: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|d| count(d) > 0 && !cache.is_current(d, count(d)))
        .collect();
    let mut states = HashMap::new();
    if !behind.is_empty() {
        for (device, stored) in features::states(c, &behind).await? {
            let Some(history) = plan::usable_state(&stored, count(&device)) else {
                continue;
            };
            let since = messages::arrived_after(c, &device, stored.msg_count).await?;
            // Every message since must still be there (none pruned, none from before
            // arrivals were numbered), or the state cannot be brought up to date.
            if since.len() as u64 == count(&device) - stored.msg_count {
                let s = plan::StoredState {
                    history,
                    count: stored.msg_count,
                    since,
                };
                states.insert(device, s);
            }
        }
    }
    let mut histories = HashMap::new();
    for g in &groups {
        let device = g[0].device();
        if behind.contains(&device) && !states.contains_key(device) {
            let stored = messages::since(c, device, plan::rebuild_from(g)).await?;
            histories.insert(device.to_owned(), stored);
        }
    }
    let answers: Vec<(&str, &str)> = fresh
        .iter()
        .filter_map(|a| match &a.message {
            Message::Ack(env) => Some((a.device(), env.body.command_id.as_str())),
            _ => None,
        })
        .collect();
    let commands = if answers.is_empty() {
        HashMap::new()
    } else {
        outbox::commands_answered(c, &answers).await?
    };
    Ok(Snapshot {
        devices: rows,
        known_epochs,
        states,
        histories,
        commands,
    })
}

/// Reads what each candidate's decision needs.
pub async fn contexts(
    c: &mut AnyConnection,
    candidates: &[Candidate],
    policy: &PolicyConfig,
    excerpt: usize,
    now: Timestamp,
) -> Result<HashMap<String, DeviceContext>, StoreError> {
    if candidates.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<&str> = candidates.iter().map(|c| c.device.as_str()).collect();
    let mut regs = registry::registrations(c, &ids).await?;
    let mut open = tickets::open_for(c, &ids).await?;
    let window = u64::from(policy.contact_window_days) * 86_400_000;
    let mut out = HashMap::with_capacity(candidates.len());
    for cand in candidates {
        let registration = regs.remove(&cand.device).unwrap_or_default();
        let contacts = tickets::contact_history(
            c,
            &cand.device,
            registration.customer_id.as_deref(),
            cand.problem,
            now.0.saturating_sub(window),
        )
        .await?;
        let recent = messages::recent_telemetry(c, &cand.device, excerpt).await?;
        out.insert(
            cand.device.clone(),
            DeviceContext {
                registration,
                open: open.remove(&cand.device).unwrap_or_default(),
                contacts,
                recent,
            },
        );
    }
    Ok(out)
}
