//! Stage 2, dedup: `(device, seq)` identifies a message. Repeats inside a batch are
//! dropped here; repeats of what the store already holds are dropped against the
//! store's keys. The batch is also put in device order here, which every later stage
//! relies on: a device's messages sit together, in their arrival order, and replicas
//! lock device rows in the same order. Pure.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::decode::Accepted;
use crate::store::devices::DeviceRow;
use crate::store::messages::MessageKey;

/// Puts the batch in device order (stable, so each device keeps its arrival order) and
/// drops repeats of a `(device, seq)` after its first arrival; how many it dropped.
pub fn within_batch(mut accepted: Vec<Accepted<'_>>) -> (Vec<Accepted<'_>>, u64) {
    accepted.sort_by(|a, b| a.device().cmp(b.device()));
    let before = accepted.len();
    let mut seen: HashSet<(&str, u64)> = HashSet::with_capacity(before);
    let keep: Vec<bool> = accepted
        .iter()
        .map(|a| seen.insert((a.device(), a.seq)))
        .collect();
    let mut keep = keep.into_iter();
    accepted.retain(|_| keep.next().unwrap_or(false));
    let dropped = (before - accepted.len()) as u64;
    (accepted, dropped)
}

/// Where the store may already hold some of the batch: per device, the range of its
/// seqs at or below the highest the store has for it (`rows`, before the batch). A
/// device's live messages are above that, so in steady state nothing is looked up; a
/// redelivery or a replayed spool is.
pub fn maybe_stored<'b>(
    accepted: &'b [Accepted<'_>],
    rows: &HashMap<String, DeviceRow>,
) -> Vec<(&'b str, u64, u64)> {
    let mut out = Vec::new();
    for group in accepted.chunk_by(|a, b| a.device() == b.device()) {
        let device = group[0].device();
        let Some(row) = rows.get(device).filter(|r| r.stats.count > 0) else {
            continue;
        };
        // At or below the pruned watermark there is nothing left to look up.
        let old = group
            .iter()
            .map(|a| a.seq)
            .filter(|&s| s <= row.stats.max_seq && row.pruned_seq.is_none_or(|p| s > p));
        if let (Some(lo), Some(hi)) = (old.clone().min(), old.max()) {
            out.push((device, lo, hi));
        }
    }
    out
}

/// Drops what the store already holds, and what retention pruned (a seq at or below
/// its device's pruned watermark); how many it dropped. Borrows the batch when nothing
/// is dropped, as for all but redeliveries.
pub fn against_store<'b, 'a>(
    accepted: &'b [Accepted<'a>],
    known: &HashSet<MessageKey>,
    rows: &HashMap<String, DeviceRow>,
) -> (Cow<'b, [Accepted<'a>]>, u64) {
    let pruned = |a: &Accepted<'_>| {
        rows.get(a.device())
            .and_then(|r| r.pruned_seq)
            .is_some_and(|p| a.seq <= p)
    };
    if known.is_empty() && !accepted.iter().any(pruned) {
        return (Cow::Borrowed(accepted), 0);
    }
    let kept: Vec<Accepted<'a>> = accepted
        .iter()
        .filter(|a| !pruned(a) && !known.contains(&(a.device().to_owned(), a.seq)))
        .cloned()
        .collect();
    let dropped = (accepted.len() - kept.len()) as u64;
    (Cow::Owned(kept), dropped)
}
