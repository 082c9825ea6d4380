//! Stage 2, dedup: `(device, epoch, seq)` identifies a message. Repeats inside a batch
//! are dropped here; repeats of what the store already holds are dropped against the
//! store's keys, and a message at a key the store holds from another boot is no repeat
//! but a reused seq, rejected. The batch is also put in device order here, which every
//! later stage relies on: a device's messages sit together, in their arrival order, and
//! replicas lock device rows in the same order. Pure.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::decode::{Accepted, Rejection, SEQ_REUSED};
use super::epochs::DeviceEpochs;
use crate::store::devices::DeviceRow;
use crate::store::messages::{MessageKey, SeqRange};

/// Puts the batch in device order (stable, so each device keeps its arrival order) and
/// drops repeats of a `(device, epoch, seq)` after its first arrival; how many it
/// dropped.
pub fn within_batch(mut accepted: Vec<Accepted<'_>>) -> (Vec<Accepted<'_>>, u64) {
    accepted.sort_by(|a, b| a.device().cmp(b.device()));
    let before = accepted.len();
    let mut seen: HashSet<(&str, u32, u64)> = HashSet::with_capacity(before);
    let keep: Vec<bool> = accepted
        .iter()
        .map(|a| seen.insert((a.device(), a.epoch, a.seq)))
        .collect();
    let mut keep = keep.into_iter();
    accepted.retain(|_| keep.next().unwrap_or(false));
    let dropped = (before - accepted.len()) as u64;
    (accepted, dropped)
}

/// Where the store may already hold some of the batch. Of a device's current epoch:
/// the range of its seqs at or below the highest the store has (`rows`, before the
/// batch) and above the pruned watermark; a device's live messages are above that, so
/// in steady state nothing is looked up. Of an earlier epoch: all of them. Of a new
/// epoch: none.
pub fn maybe_stored<'b>(
    accepted: &'b [Accepted<'_>],
    rows: &HashMap<String, DeviceRow>,
    epochs: &HashMap<String, DeviceEpochs>,
) -> Vec<SeqRange<'b>> {
    let mut out = Vec::new();
    for group in accepted.chunk_by(|a, b| a.device() == b.device()) {
        let device = group[0].device();
        let (Some(row), Some(ep)) = (rows.get(device), epochs.get(device)) else {
            continue;
        };
        // (epoch, lowest, highest), a handful per device at most.
        let mut ranges: Vec<(u32, u64, u64)> = Vec::new();
        for a in group {
            let look = if ep.was_current(a.epoch) {
                // At or below the pruned watermark there is nothing left to look up.
                a.seq <= row.stats.max_seq && row.pruned_seq.is_none_or(|p| a.seq > p)
            } else {
                !ep.is_new(a.epoch)
            };
            if !look {
                continue;
            }
            match ranges.iter_mut().find(|r| r.0 == a.epoch) {
                Some(r) => (r.1, r.2) = (r.1.min(a.seq), r.2.max(a.seq)),
                None => ranges.push((a.epoch, a.seq, a.seq)),
            }
        }
        out.extend(ranges.into_iter().map(|(e, lo, hi)| (device, e, lo, hi)));
    }
    out
}

/// The batch's messages whose key the store holds: either repeats, or (from another
/// boot) reused seqs; [`against_store`] tells them apart by the stored boot ids.
pub fn collisions(accepted: &[Accepted<'_>], known: &HashSet<MessageKey>) -> Vec<MessageKey> {
    if known.is_empty() {
        return Vec::new();
    }
    accepted
        .iter()
        .map(key)
        .filter(|k| known.contains(k))
        .collect()
}

fn key(a: &Accepted<'_>) -> MessageKey {
    (a.device().to_owned(), a.epoch, a.seq)
}

/// What the store already holds, dropped.
pub struct Deduplicated<'b, 'a> {
    /// The messages to store.
    pub fresh: Cow<'b, [Accepted<'a>]>,
    /// Repeats dropped: of stored messages, and of what retention pruned (a seq of the
    /// current epoch at or below its device's pruned watermark).
    pub repeats: u64,
    /// Messages at a stored key from another boot (`boots`: the stored messages' boot
    /// ids): the device restarted its count without a new epoch.
    pub reused: Vec<Rejection<'a>>,
}

/// Drops what the store already holds. Borrows the batch when nothing is dropped, as
/// for all but redeliveries.
pub fn against_store<'b, 'a>(
    accepted: &'b [Accepted<'a>],
    boots: &HashMap<MessageKey, String>,
    rows: &HashMap<String, DeviceRow>,
    epochs: &HashMap<String, DeviceEpochs>,
) -> Deduplicated<'b, 'a> {
    let pruned = |a: &Accepted<'_>| {
        let current = epochs
            .get(a.device())
            .is_some_and(|e| e.was_current(a.epoch));
        current
            && rows
                .get(a.device())
                .and_then(|r| r.pruned_seq)
                .is_some_and(|p| a.seq <= p)
    };
    if boots.is_empty() && !accepted.iter().any(pruned) {
        return Deduplicated {
            fresh: Cow::Borrowed(accepted),
            repeats: 0,
            reused: Vec::new(),
        };
    }
    let mut out = Deduplicated {
        fresh: Cow::Owned(Vec::with_capacity(accepted.len())),
        repeats: 0,
        reused: Vec::new(),
    };
    for a in accepted {
        if pruned(a) {
            out.repeats += 1;
            continue;
        }
        let Some(stored_boot) = boots.get(&key(a)) else {
            out.fresh.to_mut().push(a.clone());
            continue;
        };
        let boot = a.message.header().map(|h| h.boot_id.as_str());
        if boot == Some(stored_boot.as_str()) {
            out.repeats += 1;
        } else {
            out.reused.push(Rejection {
                delivery: a.delivery,
                reason: SEQ_REUSED,
                detail: format!(
                    "seq {} (epoch {}) is stored from boot {stored_boot}, and this message is \
                     of boot {}: the device restarted its count; schema 2 devices start a \
                     new epoch when they do",
                    a.seq,
                    a.epoch,
                    boot.unwrap_or("?")
                ),
            });
        }
    }
    out
}
