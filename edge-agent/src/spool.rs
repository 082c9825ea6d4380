//! The store-and-forward spool: every message the agent publishes is written here
//! first and leaves only when the broker has acknowledged it.
//!
//! # On disk
//!
//! A directory of append-only segment files named by a 16-digit counter
//! (`0000000000000001.spool`, ...). Each holds records:
//!
//! ```text
//! kind u8 | len u32 LE | seq u64 LE | crc32 u32 LE | body [len]
//! ```
//!
//! `kind` 1 is a message (`body` = channel byte, then the payload as published);
//! kind 2 retires `seq` (acknowledged or dropped; `len` is 0). The CRC covers kind,
//! len, seq and body.
//!
//! # Invariants
//!
//! - A record is complete and its CRC matches, or it is the torn tail of the newest
//!   segment left by a crash mid-write: recovery truncates that tail and keeps every
//!   record before it. So a kill loses at most the record being written.
//! - The pending set is every message record whose seq no retire record names. It is
//!   rebuilt from the segments on open; a seq seen twice (a crash during compaction)
//!   counts once.
//! - Segments are deleted oldest first and only when they hold no pending message, so a
//!   retire record never outlives the segment that holds its message.
//! - Pending payload bytes stay within the budget: a push that would exceed it drops the
//!   oldest pending messages first and reports how many. When the files grow past twice
//!   the budget (retire records piling up behind an old pending message), the pending
//!   messages are copied into a fresh segment, synced, and the old segments deleted.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use protocol::ids::Seq;
use protocol::Channel;

const KIND_MESSAGE: u8 = 1;
const KIND_RETIRE: u8 = 2;
const HEADER: usize = 1 + 4 + 8 + 4;
const SUFFIX: &str = "spool";

/// How durable each write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// `fsync` after every write: survives power loss. The default on devices.
    Always,
    /// Leave flushing to the OS: survives a killed process, not a power cut.
    Never,
}

/// Spool sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The most payload bytes kept pending.
    pub budget_bytes: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Durability of each write.
    pub sync: Sync,
}

impl SpoolConfig {
    /// A budget with segments of a quarter of it, synced on every write.
    pub fn with_budget(budget_bytes: u64) -> Self {
        SpoolConfig {
            budget_bytes,
            segment_bytes: (budget_bytes / 4).max(4096),
            sync: Sync::Always,
        }
    }
}

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The file system failed.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// One message is larger than the whole budget.
    #[error("message of {size} bytes exceeds the spool budget of {budget} bytes")]
    TooLarge {
        /// The message's size.
        size: u64,
        /// The budget.
        budget: u64,
    },
}

/// A pending message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its sequence number.
    pub seq: Seq,
    /// The channel it is published on.
    pub channel: Channel,
    /// The payload.
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    bytes: u64,
    live: usize,
}

/// The spool. See the module documentation for the format and invariants.
#[derive(Debug)]
pub struct Spool {
    dir: Option<PathBuf>,
    config: SpoolConfig,
    pending: BTreeMap<u64, (Channel, Vec<u8>, u64)>,
    pending_bytes: u64,
    segments: VecDeque<Segment>,
    active: Option<File>,
    recovered_torn: bool,
}

impl Spool {
    /// A spool that keeps nothing on disk (same bookkeeping): for simulations.
    pub fn in_memory(config: SpoolConfig) -> Self {
        Spool {
            dir: None,
            config,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            segments: VecDeque::from([Segment {
                id: 1,
                bytes: 0,
                live: 0,
            }]),
            active: None,
            recovered_torn: false,
        }
    }

    /// Opens (or creates) the spool in `dir`, recovering what a crash left.
    pub fn open(dir: impl Into<PathBuf>, config: SpoolConfig) -> Result<Self, SpoolError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let mut ids: Vec<u64> = fs::read_dir(&dir)
            .map_err(io_at(&dir))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(&format!(".{SUFFIX}"))?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut spool = Spool {
            dir: Some(dir.clone()),
            config,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            segments: VecDeque::new(),
            active: None,
            recovered_torn: false,
        };
        let mut retired = Vec::new();
        let newest = ids.last().copied();
        for id in &ids {
            let path = segment_path(&dir, *id);
            let mut data = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(io_at(&path))?;
            let (records, good_len) = parse(&data);
            if good_len < data.len() {
                spool.recovered_torn = true;
                if Some(*id) == newest {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_at(&path))?;
                    f.set_len(good_len as u64).map_err(io_at(&path))?;
                    f.sync_all().map_err(io_at(&path))?;
                } else {
                    tracing::error!(segment = %path.display(), offset = good_len,
                        "damaged record inside an older spool segment; keeping what precedes it");
                }
            }
            for r in records {
                match r {
                    Record::Message {
                        seq,
                        channel,
                        payload,
                    } => {
                        let size = payload.len() as u64;
                        if spool.pending.insert(seq, (channel, payload, *id)).is_none() {
                            spool.pending_bytes += size;
                        } else {
                            spool.pending.get_mut(&seq).expect("just inserted").2 = *id;
                        }
                    }
                    Record::Retire { seq } => retired.push(seq),
                }
            }
            spool.segments.push_back(Segment {
                id: *id,
                bytes: good_len as u64,
                live: 0,
            });
        }
        for seq in retired {
            if let Some((_, payload, _)) = spool.pending.remove(&seq) {
                spool.pending_bytes -= payload.len() as u64;
            }
        }
        for (_, _, seg) in spool.pending.values() {
            if let Some(s) = spool.segments.iter_mut().find(|s| s.id == *seg) {
                s.live += 1;
            }
        }
        let next = newest.map_or(1, |n| n + 1);
        spool.segments.push_back(Segment {
            id: next,
            bytes: 0,
            live: 0,
        });
        spool.open_active()?;
        spool.collect_garbage()?;
        Ok(spool)
    }

    /// True when opening found and cut off a torn record.
    pub fn recovered_torn(&self) -> bool {
        self.recovered_torn
    }

    /// Appends a message. Returns how many older messages were dropped to make room.
    pub fn push(&mut self, seq: Seq, channel: Channel, payload: &[u8]) -> Result<u32, SpoolError> {
        let size = payload.len() as u64;
        if size > self.config.budget_bytes {
            return Err(SpoolError::TooLarge {
                size,
                budget: self.config.budget_bytes,
            });
        }
        let mut dropped = 0;
        while self.pending_bytes + size > self.config.budget_bytes {
            let oldest = *self
                .pending
                .keys()
                .next()
                .expect("bytes pending means entries");
            self.retire(Seq(oldest))?;
            dropped += 1;
        }
        let mut body = Vec::with_capacity(payload.len() + 1);
        body.push(channel_code(channel));
        body.extend_from_slice(payload);
        self.append(KIND_MESSAGE, seq.0, &body)?;
        let active = self.segments.back_mut().expect("an active segment");
        active.live += 1;
        self.pending
            .insert(seq.0, (channel, payload.to_vec(), active.id));
        self.pending_bytes += size;
        self.roll_if_full()?;
        Ok(dropped)
    }

    /// Removes a message that was acknowledged (or dropped). Unknown seqs are ignored:
    /// a duplicate acknowledgement is harmless.
    pub fn retire(&mut self, seq: Seq) -> Result<bool, SpoolError> {
        let Some((_, payload, seg)) = self.pending.remove(&seq.0) else {
            return Ok(false);
        };
        self.pending_bytes -= payload.len() as u64;
        if let Some(s) = self.segments.iter_mut().find(|s| s.id == seg) {
            s.live -= 1;
        }
        self.append(KIND_RETIRE, seq.0, &[])?;
        self.collect_garbage()?;
        Ok(true)
    }

    /// The first pending message after `after` (or the oldest, given `None`).
    pub fn next_after(&self, after: Option<Seq>) -> Option<Pending> {
        let start = after.map_or(0, |s| s.0.saturating_add(1));
        self.pending
            .range(start..)
            .next()
            .map(|(seq, (channel, payload, _))| Pending {
                seq: Seq(*seq),
                channel: *channel,
                payload: payload.clone(),
            })
    }

    /// How many messages are pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Payload bytes pending.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// Bytes in segment files (retire records and not-yet-collected messages included).
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn open_active(&mut self) -> Result<(), SpoolError> {
        if let Some(dir) = &self.dir {
            let id = self.segments.back().expect("an active segment").id;
            let path = segment_path(dir, id);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_at(&path))?;
            if self.config.sync == Sync::Always {
                sync_dir(dir)?;
            }
            self.active = Some(f);
        }
        Ok(())
    }

    fn append(&mut self, kind: u8, seq: u64, body: &[u8]) -> Result<(), SpoolError> {
        let record = encode(kind, seq, body);
        let active = self.segments.back_mut().expect("an active segment");
        active.bytes += record.len() as u64;
        if let (Some(f), Some(dir)) = (self.active.as_mut(), &self.dir) {
            let path = segment_path(dir, active.id);
            // One write call per record: a kill leaves at most this record torn.
            f.write_all(&record).map_err(io_at(&path))?;
            if self.config.sync == Sync::Always {
                f.sync_data().map_err(io_at(&path))?;
            }
        }
        Ok(())
    }

    fn roll_if_full(&mut self) -> Result<(), SpoolError> {
        let active = self.segments.back().expect("an active segment");
        if active.bytes < self.config.segment_bytes {
            return Ok(());
        }
        let next = active.id + 1;
        self.segments.push_back(Segment {
            id: next,
            bytes: 0,
            live: 0,
        });
        self.open_active()?;
        self.collect_garbage()
    }

    /// Deletes drained segments from the front; compacts when the files outgrow the budget.
    fn collect_garbage(&mut self) -> Result<(), SpoolError> {
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.live == 0) {
            let s = self.segments.pop_front().expect("checked");
            self.remove_segment(s.id)?;
        }
        let limit = 2 * self.config.budget_bytes + self.config.segment_bytes;
        if self.disk_bytes() > limit {
            self.compact()?;
        }
        Ok(())
    }

    fn compact(&mut self) -> Result<(), SpoolError> {
        let old: Vec<u64> = self.segments.iter().map(|s| s.id).collect();
        let id = old.last().copied().unwrap_or(0) + 1;
        let mut bytes = Vec::new();
        for (seq, (channel, payload, seg)) in self.pending.iter_mut() {
            let mut body = Vec::with_capacity(payload.len() + 1);
            body.push(channel_code(*channel));
            body.extend_from_slice(payload);
            bytes.extend(encode(KIND_MESSAGE, *seq, &body));
            *seg = id;
        }
        if let Some(dir) = &self.dir {
            let path = segment_path(dir, id);
            let mut f = File::create(&path).map_err(io_at(&path))?;
            f.write_all(&bytes).map_err(io_at(&path))?;
            // The copy must be durable before the originals go, whatever the policy.
            f.sync_all().map_err(io_at(&path))?;
            sync_dir(dir)?;
        }
        self.segments.clear();
        self.segments.push_back(Segment {
            id,
            bytes: bytes.len() as u64,
            live: self.pending.len(),
        });
        self.open_active()?;
        for id in old {
            self.remove_segment(id)?;
        }
        Ok(())
    }

    fn remove_segment(&self, id: u64) -> Result<(), SpoolError> {
        if let Some(dir) = &self.dir {
            let path = segment_path(dir, id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(SpoolError::Io { path, source: e }),
            }
        }
        Ok(())
    }
}

enum Record {
    Message {
        seq: u64,
        channel: Channel,
        payload: Vec<u8>,
    },
    Retire {
        seq: u64,
    },
}

fn encode(kind: u8, seq: u64, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("payloads are far below 4 GiB");
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.push(kind);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out);
    crc.update(body);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Parses records up to the first incomplete or damaged one; returns them and the
/// length of the good prefix.
fn parse(data: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while data.len() - at >= HEADER {
        let h = &data[at..at + HEADER];
        let kind = h[0];
        let len = u32::from_le_bytes(h[1..5].try_into().expect("4 bytes")) as usize;
        let seq = u64::from_le_bytes(h[5..13].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(h[13..17].try_into().expect("4 bytes"));
        let Some(body) = data.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&h[..13]);
        hasher.update(body);
        if hasher.finalize() != crc {
            break;
        }
        let record = match (kind, body.split_first()) {
            (KIND_MESSAGE, Some((code, payload))) => match channel_from_code(*code) {
                Some(channel) => Record::Message {
                    seq,
                    channel,
                    payload: payload.to_vec(),
                },
                None => break,
            },
            (KIND_RETIRE, _) if len == 0 => Record::Retire { seq },
            _ => break,
        };
        records.push(record);
        at += HEADER + len;
    }
    (records, at)
}

fn channel_code(c: Channel) -> u8 {
    match c {
        Channel::Heartbeat => 0,
        Channel::Event => 1,
        Channel::State => 2,
        Channel::Command => 3,
        Channel::Ack => 4,
    }
}

fn channel_from_code(code: u8) -> Option<Channel> {
    Some(match code {
        0 => Channel::Heartbeat,
        1 => Channel::Event,
        2 => Channel::State,
        3 => Channel::Command,
        4 => Channel::Ack,
        _ => return None,
    })
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.{SUFFIX}"))
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(budget: u64) -> SpoolConfig {
        SpoolConfig {
            budget_bytes: budget,
            segment_bytes: 256,
            sync: Sync::Never,
        }
    }

    fn payload(seq: u64) -> Vec<u8> {
        format!(
            "{{\"seq\":{seq},\"pad\":\"{}\"}}",
            "x".repeat((seq % 7) as usize)
        )
        .into_bytes()
    }

    fn drain(spool: &Spool) -> Vec<u64> {
        let mut out = Vec::new();
        let mut cursor = None;
        while let Some(p) = spool.next_after(cursor) {
            assert_eq!(p.payload, payload(p.seq.0));
            out.push(p.seq.0);
            cursor = Some(p.seq);
        }
        out
    }

    #[test]
    fn pending_messages_survive_reopening_and_acks_stick() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), config(10_000)).unwrap();
        for seq in 1..=20 {
            s.push(Seq(seq), Channel::Heartbeat, &payload(seq)).unwrap();
        }
        for seq in [1, 2, 3, 10] {
            assert!(s.retire(Seq(seq)).unwrap());
        }
        assert!(!s.retire(Seq(10)).unwrap(), "a second ack is a no-op");
        drop(s);
        let s = Spool::open(dir.path(), config(10_000)).unwrap();
        let expected: Vec<u64> = (4..=20).filter(|s| *s != 10).collect();
        assert_eq!(drain(&s), expected);
        assert!(!s.recovered_torn());
    }

    #[test]
    fn a_full_budget_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), config(300)).unwrap();
        let mut dropped = 0;
        for seq in 1..=40 {
            dropped += s.push(Seq(seq), Channel::Event, &payload(seq)).unwrap();
            assert!(s.pending_bytes() <= 300);
        }
        let kept = drain(&s);
        assert_eq!(kept.len() as u32 + dropped, 40);
        assert_eq!(*kept.last().unwrap(), 40);
        assert_eq!(
            kept,
            (kept[0]..=40).collect::<Vec<_>>(),
            "a contiguous newest run"
        );
        drop(s);
        assert_eq!(drain(&Spool::open(dir.path(), config(300)).unwrap()), kept);
    }

    #[test]
    fn an_oversized_message_is_refused() {
        let mut s = Spool::in_memory(config(10));
        assert!(matches!(
            s.push(Seq(1), Channel::Event, &[0; 11]),
            Err(SpoolError::TooLarge {
                size: 11,
                budget: 10
            })
        ));
    }

    #[test]
    fn a_torn_tail_is_cut_and_everything_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), config(100_000)).unwrap();
        for seq in 1..=5 {
            s.push(Seq(seq), Channel::Heartbeat, &payload(seq)).unwrap();
        }
        drop(s);
        // Append half of a sixth record, as a kill in the middle of write() would.
        let newest = newest_segment(dir.path());
        let torn = encode(KIND_MESSAGE, 6, &[0, b'{', b'}']);
        let mut f = OpenOptions::new().append(true).open(&newest).unwrap();
        f.write_all(&torn[..torn.len() - 2]).unwrap();
        drop(f);
        let mut s = Spool::open(dir.path(), config(100_000)).unwrap();
        assert!(s.recovered_torn());
        assert_eq!(drain(&s), vec![1, 2, 3, 4, 5]);
        // The spool keeps working after the repair.
        s.push(Seq(6), Channel::Heartbeat, &payload(6)).unwrap();
        drop(s);
        assert_eq!(
            drain(&Spool::open(dir.path(), config(100_000)).unwrap()),
            vec![1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn files_stay_bounded_while_an_old_message_stays_pending() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), config(1000)).unwrap();
        s.push(Seq(1), Channel::Heartbeat, &payload(1)).unwrap(); // never acked
        for seq in 2..2000 {
            s.push(Seq(seq), Channel::Heartbeat, &payload(seq)).unwrap();
            s.retire(Seq(seq)).unwrap();
        }
        let on_disk: u64 = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(on_disk <= 2 * 1000 + 256 + 128, "{on_disk} bytes on disk");
        drop(s);
        assert_eq!(
            drain(&Spool::open(dir.path(), config(1000)).unwrap()),
            vec![1]
        );
    }

    fn newest_segment(dir: &Path) -> PathBuf {
        let mut files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.pop().unwrap()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push,
        Ack(usize),
        Reopen,
        Tear(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Push),
            3 => (0usize..8).prop_map(Op::Ack),
            1 => Just(Op::Reopen),
            1 => (1usize..16).prop_map(Op::Tear),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Against a model: pending = pushed - acked - dropped-oldest, through reopening
        /// and torn writes (which lose only the record being written).
        #[test]
        fn behaves_like_its_model(ops in proptest::collection::vec(op(), 1..120)) {
            let dir = tempfile::tempdir().unwrap();
            let cfg = config(400);
            let mut s = Spool::open(dir.path(), cfg).unwrap();
            let mut model: BTreeMap<u64, ()> = BTreeMap::new();
            let mut next = 1u64;
            for op in ops {
                match op {
                    Op::Push => {
                        let dropped = s.push(Seq(next), Channel::Heartbeat, &payload(next)).unwrap();
                        for _ in 0..dropped {
                            let first = *model.keys().next().unwrap();
                            model.remove(&first);
                        }
                        model.insert(next, ());
                        next += 1;
                    }
                    Op::Ack(i) => {
                        if let Some(seq) = model.keys().nth(i).copied() {
                            prop_assert!(s.retire(Seq(seq)).unwrap());
                            model.remove(&seq);
                        }
                    }
                    Op::Reopen => {
                        drop(s);
                        s = Spool::open(dir.path(), cfg).unwrap();
                    }
                    Op::Tear(cut) => {
                        // A kill mid-write of a message: the model never saw it.
                        drop(s);
                        let rec = encode(KIND_MESSAGE, next, &[0, b'x']);
                        let cut = cut.min(rec.len() - 1);
                        let mut f = OpenOptions::new().append(true).open(newest_segment(dir.path())).unwrap();
                        f.write_all(&rec[..cut]).unwrap();
                        drop(f);
                        s = Spool::open(dir.path(), cfg).unwrap();
                        prop_assert!(s.recovered_torn());
                    }
                }
                prop_assert_eq!(drain(&s), model.keys().copied().collect::<Vec<_>>());
            }
        }
    }
}
