//! Scoring: the model artifact in force (reloadable without a restart) and each
//! device's feature state.
//!
//! The feature state lives in memory as a cache of the store. Before each batch the
//! store says how many messages it holds for the device; when the cache saw another
//! number (a restart, or a replica on the same shared subscription took some), the
//! device's last 31 days are read back from the store and replayed with the batch.
//! Replicas therefore score on the same history a single instance would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use models::artifact::{ArtifactError, Explanation, ModelArtifact};
use models::history::{DeviceHistory, FeatureVector, HORIZON_DAYS};
use protocol::{Channel, Limits, Message, Timestamp};

/// The model in force, and where it came from.
#[derive(Debug)]
pub struct ModelSlot {
    current: RwLock<Arc<ModelArtifact>>,
    /// Scored in the champion's shadow, never acted on ([`crate::registry`]).
    challenger: RwLock<Option<Arc<ModelArtifact>>>,
    path: Option<PathBuf>,
    loaded: RwLock<Option<SystemTime>>,
}

impl ModelSlot {
    /// Loads the artifact at `path`, or the bundled default model without one.
    pub fn load(path: Option<&Path>) -> Result<ModelSlot, ArtifactError> {
        let (artifact, mtime) = match path {
            Some(p) => (ModelArtifact::load(p)?, modified(p)),
            None => (ModelArtifact::bundled()?, None),
        };
        Ok(ModelSlot {
            current: RwLock::new(Arc::new(artifact)),
            challenger: RwLock::new(None),
            path: path.map(Path::to_owned),
            loaded: RwLock::new(mtime),
        })
    }

    /// The model to score with now.
    pub fn current(&self) -> Arc<ModelArtifact> {
        self.current.read().expect("model lock").clone()
    }

    /// The challenger, when one is set.
    pub fn challenger(&self) -> Option<Arc<ModelArtifact>> {
        self.challenger.read().expect("model lock").clone()
    }

    /// Whether the model came from a file named in configuration (not the bundled one).
    pub fn from_file(&self) -> bool {
        self.path.is_some()
    }

    /// Puts `champion` in force.
    pub fn put(&self, champion: Arc<ModelArtifact>) {
        *self.current.write().expect("model lock") = champion;
    }

    /// Sets or clears the challenger.
    pub fn put_challenger(&self, challenger: Option<Arc<ModelArtifact>>) {
        *self.challenger.write().expect("model lock") = challenger;
    }

    /// Reloads the file if it changed since it was loaded. A bad file leaves the model
    /// in force untouched and is reported. `Ok(Some(version))` when a new model took
    /// over.
    pub fn reload_if_changed(&self) -> Result<Option<String>, ArtifactError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let mtime = modified(path);
        if mtime == *self.loaded.read().expect("model lock") {
            return Ok(None);
        }
        self.reload_from(path, mtime).map(Some)
    }

    /// Reloads the file now, whether or not it changed.
    pub fn reload(&self) -> Result<Option<String>, ArtifactError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        self.reload_from(path, modified(path)).map(Some)
    }

    fn reload_from(&self, path: &Path, mtime: Option<SystemTime>) -> Result<String, ArtifactError> {
        // Remember the attempt either way: a broken file is reported once, not every poll.
        *self.loaded.write().expect("model lock") = mtime;
        let artifact = ModelArtifact::load(path)?;
        let version = artifact.version.clone();
        *self.current.write().expect("model lock") = Arc::new(artifact);
        Ok(version)
    }
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// One device's cached feature state.
#[derive(Debug)]
pub struct DeviceState {
    history: DeviceHistory,
    /// Messages the store held for the device when this state was last in step.
    count: u64,
    /// The score last written to the store.
    written: Option<Written>,
}

/// A score as last written: the champion's risk and alarm, and the challenger's.
#[derive(Debug)]
struct Written {
    risk: f64,
    alarm: bool,
    shadow: Option<crate::store::devices::ShadowScore>,
}

/// A device's score with everything a decision needs.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The feature values.
    pub features: FeatureVector,
    /// Score and top contributions.
    pub explanation: Explanation,
    /// Device time scored at.
    pub at: Timestamp,
    /// The challenger's score of the same features, when one is set.
    pub shadow: Option<crate::store::devices::ShadowScore>,
}

/// Every device's feature state, bounded in size. The store keeps each device's state
/// too (`feature_states`), so a device evicted here, or seen first by another replica,
/// is picked up from one row.
#[derive(Debug)]
pub struct FeatureCache {
    devices: HashMap<String, DeviceState>,
    capacity: usize,
}

impl FeatureCache {
    /// A cache for at most `capacity` devices.
    pub fn new(capacity: usize) -> Self {
        FeatureCache {
            devices: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Whether the cached state of `device` has seen exactly the `store_count`
    /// messages the store holds for it, so new ones can simply be added.
    pub fn is_current(&self, device: &str, store_count: u64) -> bool {
        self.devices
            .get(device)
            .is_some_and(|d| d.count == store_count)
    }

    /// Adds a message to a device that is in step.
    pub fn observe(&mut self, device: &str, message: &Message) {
        if let Some(d) = self.devices.get_mut(device) {
            d.history.observe(message);
            d.count += 1;
        }
    }

    /// Counts a stored message that carries nothing the history reads (one this build
    /// cannot decode any more), so the count stays in step with the store.
    pub fn count_only(&mut self, device: &str) {
        if let Some(d) = self.devices.get_mut(device) {
            d.count += 1;
        }
    }

    /// Replaces a device's state by a replay of its stored messages (oldest first),
    /// which the store counts as `store_count` in all.
    pub fn rebuild<'a>(
        &mut self,
        device: &str,
        purchased: Option<Timestamp>,
        stored: impl IntoIterator<Item = (&'a str, &'a str)>,
        store_count: u64,
    ) {
        let mut history = DeviceHistory::new(purchased);
        let limits = Limits::default();
        for (channel, payload) in stored {
            if let Some(m) = decode_stored(channel, payload, &limits) {
                history.observe(&m);
            }
        }
        self.restore(device, history, store_count);
    }

    /// Puts in a device's state as stored (its history after `store_count` messages).
    pub fn restore(&mut self, device: &str, history: DeviceHistory, store_count: u64) {
        if self.devices.len() >= self.capacity && !self.devices.contains_key(device) {
            // Any victim will do: an evicted device is restored from the store on its
            // next message.
            if let Some(k) = self.devices.keys().next().cloned() {
                self.devices.remove(&k);
            }
        }
        self.devices.insert(
            device.to_owned(),
            DeviceState {
                history,
                count: store_count,
                written: None,
            },
        );
    }

    /// A device's state for the store: (message count, snapshot).
    pub fn snapshot(&self, device: &str) -> Option<(u64, String)> {
        self.devices
            .get(device)
            .map(|d| (d.count, d.history.to_snapshot()))
    }

    /// Whether a score (or the challenger's `shadow` beside it) differs enough from the
    /// one last written to be written (its alarm changed, or its risk moved by 0.005 or
    /// more, or the challenger came or went); remembers it if so. Writing every
    /// unchanged score would double the store's work for nothing.
    pub fn score_moved(
        &mut self,
        device: &str,
        score: &models::artifact::Score,
        shadow: Option<&crate::store::devices::ShadowScore>,
    ) -> bool {
        let Some(d) = self.devices.get_mut(device) else {
            return true;
        };
        let apart = |(risk, alarm): (f64, bool), (r, a): (f64, bool)| {
            alarm != a || (risk - r).abs() >= 0.005
        };
        let now = (score.probability, score.alarm);
        let moved = match &d.written {
            Some(w) => {
                apart((w.risk, w.alarm), now)
                    || match (&w.shadow, shadow) {
                        (Some(a), Some(b)) => {
                            a.version != b.version || apart((a.risk, a.alarm), (b.risk, b.alarm))
                        }
                        (None, None) => false,
                        _ => true,
                    }
            }
            None => true,
        };
        if moved {
            d.written = Some(Written {
                risk: now.0,
                alarm: now.1,
                shadow: shadow.cloned(),
            });
        }
        moved
    }

    /// Forgets a device (after a failed transaction: the store is the truth).
    pub fn forget(&mut self, device: &str) {
        self.devices.remove(device);
    }

    /// Scores a device at its newest telemetry.
    pub fn score(&self, device: &str, model: &ModelArtifact, top: usize) -> Option<Scored> {
        let d = self.devices.get(device)?;
        let at = d.history.newest()?;
        let features = d.history.features(at);
        let explanation = model.explain(&features, top);
        Some(Scored {
            features,
            explanation,
            at,
            shadow: None,
        })
    }

    /// Devices cached.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device is cached.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

/// How far back a rebuild reads: the history's horizon.
pub fn rebuild_since(newest: Timestamp) -> u64 {
    newest.0.saturating_sub(HORIZON_DAYS * 24 * 3_600_000)
}

/// Decodes a stored payload of a named channel (it passed validation when it arrived).
pub fn decode_stored(channel: &str, payload: &str, limits: &Limits) -> Option<Message> {
    use protocol::codec::decode_payload;
    let bytes = payload.as_bytes();
    Some(match channel.parse().ok()? {
        Channel::Heartbeat => Message::Heartbeat(decode_payload(bytes, limits).ok()?),
        Channel::Event => Message::Event(decode_payload(bytes, limits).ok()?),
        Channel::State => Message::State(decode_payload(bytes, limits).ok()?),
        Channel::Ack => Message::Ack(decode_payload(bytes, limits).ok()?),
        Channel::Command => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_model_file_keeps_the_model_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        ModelArtifact::bundled().unwrap().save(&path).unwrap();
        let slot = ModelSlot::load(Some(&path)).unwrap();
        let version = slot.current().version.clone();
        assert_eq!(slot.reload_if_changed().unwrap(), None, "unchanged file");
        std::fs::write(&path, b"{ not a model").unwrap();
        // Some file systems keep a coarse mtime: force the reload rather than rely on it.
        assert!(slot.reload().is_err());
        assert_eq!(slot.current().version, version);
        let mut other = ModelArtifact::bundled().unwrap();
        other.version = "forest-test-2".into();
        other.save(&path).unwrap();
        assert_eq!(slot.reload().unwrap().as_deref(), Some("forest-test-2"));
        assert_eq!(slot.current().version, "forest-test-2");
    }

    #[test]
    fn the_cache_knows_when_it_is_out_of_step_and_stays_bounded() {
        let mut c = FeatureCache::new(2);
        assert!(!c.is_current("a", 0), "never seen: rebuild");
        c.rebuild("a", None, std::iter::empty(), 0);
        assert!(c.is_current("a", 0));
        let hb = Message::Heartbeat(protocol::examples::heartbeat());
        c.observe("a", &hb);
        assert!(c.is_current("a", 1));
        assert!(
            !c.is_current("a", 3),
            "a replica took two messages: rebuild"
        );
        c.rebuild("b", None, std::iter::empty(), 5);
        c.rebuild("c", None, std::iter::empty(), 5);
        assert_eq!(c.len(), 2);
        c.forget("c");
        assert!(!c.is_current("c", 5));
    }
}
