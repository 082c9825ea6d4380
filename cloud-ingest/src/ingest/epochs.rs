//! Sequence epochs (protocol schema 2): which run of its seqs each of a device's
//! messages belongs to, and whether a batch starts a new run because the device lost
//! its state and counts from the beginning again. Pure.
//!
//! An epoch the store has never seen for the device, arriving after the device's
//! current one, starts a new run: it becomes current and, unless the device is new or
//! moves from schema 1 (epoch 0) to its first epoch, counts as a reset. A message of an
//! epoch the store knows that is not the current one is a late message of an earlier
//! run (a redelivery): it is kept under its own epoch and changes nothing else.

use std::collections::HashMap;

use super::decode::Accepted;
use crate::store::devices::DeviceRow;

/// What one device's messages in a batch do to its epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEpochs {
    /// The current epoch before the batch; `None` for a device with no messages yet.
    pub before: Option<u32>,
    /// The current epoch after it.
    pub current: u32,
    /// Epochs seen for the first time, in arrival order, with the seq of their first
    /// message.
    pub new: Vec<(u32, u64)>,
    /// Times the device restarted its count.
    pub resets: u64,
}

impl DeviceEpochs {
    /// Whether `epoch` is the device's current one as the store held it before the
    /// batch: the epoch its seq accounting and pruned watermark are of.
    pub fn was_current(&self, epoch: u32) -> bool {
        self.before == Some(epoch)
    }

    /// Whether `epoch` is new to the store: none of its messages can be stored yet.
    pub fn is_new(&self, epoch: u32) -> bool {
        self.new.iter().any(|&(e, _)| e == epoch)
    }
}

/// Judges one device's messages (in arrival order) against its stored row and the
/// epochs the store knows for it (needed only when a message is not of the row's
/// current epoch).
pub fn judge(row: Option<&DeviceRow>, known: &[u32], group: &[Accepted<'_>]) -> DeviceEpochs {
    let before = row.filter(|r| r.stats.count > 0).map(|r| r.epoch);
    let mut out = DeviceEpochs {
        before,
        current: before.unwrap_or(0),
        new: Vec::new(),
        resets: 0,
    };
    let mut current = before;
    for a in group {
        let e = a.epoch;
        if current == Some(e) || known.contains(&e) || out.is_new(e) {
            continue;
        }
        if current.is_some_and(|c| c != 0) {
            out.resets += 1;
        }
        out.new.push((e, a.seq));
        current = Some(e);
    }
    out.current = current.unwrap_or(0);
    out
}

/// Whether the batch has a message of another epoch than its device's current one, so
/// that the store's known epochs for the device must be read.
pub fn needs_known(row: Option<&DeviceRow>, group: &[Accepted<'_>]) -> bool {
    match row.filter(|r| r.stats.count > 0) {
        Some(r) => group.iter().any(|a| a.epoch != r.epoch),
        None => false,
    }
}

/// [`judge`] for every device of a batch in device order, by device.
pub fn judge_batch(
    fresh: &[Accepted<'_>],
    rows: &HashMap<String, DeviceRow>,
    known: &HashMap<String, Vec<u32>>,
) -> HashMap<String, DeviceEpochs> {
    fresh
        .chunk_by(|a, b| a.device() == b.device())
        .map(|g| {
            let device = g[0].device();
            let known = known.get(device).map_or(&[][..], Vec::as_slice);
            (device.to_owned(), judge(rows.get(device), known, g))
        })
        .collect()
}
