//! The agent's state file: written whole, atomically (temporary file, fsync, rename),
//! so a crash leaves either the old state or the new one, never a torn one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::agent::AgentState;

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a state this agent can read.
    #[error(
        "state file {path} is unreadable ({source}); move it away to start afresh, \
             knowing the device then restarts its sequence numbers"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// The agent state persisted as one JSON file.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// The store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the state; `None` when the device has never run.
    pub fn load(&self) -> Result<Option<AgentState>, StoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Corrupt {
                        path: self.path.clone(),
                        source,
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Saves the state atomically.
    pub fn save(&self, state: &AgentState) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec(state).expect("the state serialises");
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(io)?;
        fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{Agent, Identity};
    use crate::hal::{BatterySample, HalError, Platform, ResetCause};
    use crate::Settings;
    use protocol::ids::{BatchId, FirmwareVersion, HardwareRevision, ModelId};
    use protocol::state::{Birth, DeviceClass};
    use protocol::{DeviceId, Timestamp};

    struct Quiet;

    impl Platform for Quiet {
        fn battery(&mut self) -> Result<Option<BatterySample>, HalError> {
            Ok(None)
        }
        fn temperature_c(&mut self) -> Result<Option<f32>, HalError> {
            Ok(None)
        }
        fn reset_cause(&mut self) -> Result<ResetCause, HalError> {
            Ok(ResetCause::PowerOn)
        }
        fn is_active(&mut self) -> bool {
            false
        }
        fn storage_self_test(&mut self) -> Result<(), HalError> {
            Ok(())
        }
        fn entropy(&mut self) -> u32 {
            1
        }
    }

    fn state() -> AgentState {
        let identity = Identity {
            device_id: DeviceId::new("dev-1").unwrap(),
            birth: Birth {
                model: ModelId::new("m").unwrap(),
                device_class: DeviceClass::Hub,
                hw_revision: HardwareRevision::new("r1").unwrap(),
                batch: BatchId::new("b").unwrap(),
                firmware: FirmwareVersion::new("1").unwrap(),
                agent_version: FirmwareVersion::new("1").unwrap(),
            },
        };
        let (agent, _) = Agent::boot(
            identity,
            None,
            Settings::default(),
            &mut Quiet,
            Timestamp(1_767_225_600_000),
        );
        agent.state().clone()
    }

    #[test]
    fn saves_and_loads_and_refuses_a_damaged_file_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("agent-state.json"));
        assert!(store.load().unwrap().is_none(), "a device that never ran");
        let s = state();
        store.save(&s).unwrap();
        assert_eq!(store.load().unwrap(), Some(s));
        assert!(
            !dir.path().join("agent-state.tmp").exists(),
            "no temporary left behind"
        );

        std::fs::write(store.path(), b"{\"next_seq\": 12, \"boo").unwrap();
        let err = store.load().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        let text = err.to_string();
        assert!(
            text.contains("agent-state.json") && text.contains("restarts its sequence"),
            "{text}"
        );
    }
}
