//! The model registry: which model drives policy (the champion), which is scored in its
//! shadow (the challenger), how a challenger is promoted past the [`gate`] or a champion
//! rolled back. The store is the truth; every replica's [`ModelSlot`] follows it
//! ([`sync`], polled with the model file), so a promotion needs no restart anywhere.
//!
//! The model a replica starts with (the bundled one, or the file in configuration) is
//! registered on start. It becomes champion when there is none, or when the file holds a
//! version the registry has never seen (the operator put a new model there); a version
//! registered before does not displace the champion, so a rollback survives restarts.

pub mod gate;

use std::sync::Arc;

use models::artifact::{ArtifactError, ModelArtifact};
use models::history::FeatureVector;
use models::schema::schema_fingerprint;
use sha2::{Digest, Sha256};

use crate::score::ModelSlot;
use crate::store::model_versions::{AliasMove, Aliases, ModelChange, NewChange, NewModelVersion};
use crate::store::{Store, StoreError};
use crate::tickets::labels;
use gate::{Gate, GateConfig, Outcome, Window};

/// Outcomes read per store query when measuring the gate.
const PAGE: u32 = 1_000;
/// Disagreements the gate lists.
const DISAGREEMENTS: u32 = 20;

/// Why a registry request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed (or an alias changed meanwhile: a conflict).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Not an artifact this build can score with.
    #[error("{0}")]
    Artifact(#[from] ArtifactError),
    /// No such version.
    #[error("model version {0:?} is not registered")]
    Unknown(String),
    /// Nothing to promote.
    #[error("no challenger is set; set one first")]
    NoChallenger,
    /// The challenger is another one than the request saw.
    #[error("the challenger is {now}, not {seen}; reload and look at its gate first")]
    Stale {
        /// What the request named.
        seen: String,
        /// What is set.
        now: String,
    },
    /// The version is the champion already.
    #[error("model version {0} is the champion already")]
    Champion(String),
    /// The challenger failed its gate and no override was given.
    #[error("the challenger fails its gate: {}; promote with an override and a reason to go ahead anyway", .0.failures().join("; "))]
    GateFailed(Box<Gate>),
    /// An override needs a reason.
    #[error("overriding the gate needs a reason, recorded with the promotion")]
    NoReason,
}

/// How a registered artifact is stored: its canonical JSON and that JSON's SHA-256, so
/// the same model registered twice (however its file was formatted) is the same row.
fn canonical(a: &ModelArtifact) -> (String, String) {
    let json = serde_json::to_string(a).expect("an artifact serialises");
    let sha = hex::encode(Sha256::digest(json.as_bytes()));
    (json, sha)
}

/// Registers `a` as `by`; whether it was new.
pub async fn register_artifact(
    store: &Store,
    a: &ModelArtifact,
    by: &str,
    now_ms: u64,
) -> Result<bool, RegistryError> {
    let (json, sha) = canonical(a);
    let training = serde_json::to_string(&a.training).expect("plain data");
    let validation = serde_json::to_string(&a.validation).expect("plain data");
    Ok(store
        .register_model(&NewModelVersion {
            version: &a.version,
            kind: a.model.kind(),
            sha256: &sha,
            artifact: &json,
            threshold: a.threshold,
            training: &training,
            validation: &validation,
            at_ms: now_ms,
            by,
        })
        .await?)
}

/// Registers the artifact in `bytes` (checked against this build first) as `by`.
pub async fn register(
    store: &Store,
    bytes: &[u8],
    by: &str,
    now_ms: u64,
) -> Result<(ModelArtifact, bool), RegistryError> {
    let a = ModelArtifact::from_json(bytes, "the uploaded artifact")?;
    let new = register_artifact(store, &a, by, now_ms).await?;
    Ok((a, new))
}

async fn load(store: &Store, version: &str) -> Result<Arc<ModelArtifact>, RegistryError> {
    let json = store
        .model_artifact(version)
        .await?
        .ok_or_else(|| RegistryError::Unknown(version.to_owned()))?;
    Ok(Arc::new(ModelArtifact::from_json(
        json.as_bytes(),
        &format!("registered model {version}"),
    )?))
}

/// Registers the model `slot` starts with and settles who is champion (see the module's
/// documentation), then loads what the registry says.
pub async fn start(store: &Store, slot: &ModelSlot, now_ms: u64) -> Result<(), RegistryError> {
    let current = slot.current();
    let actor = if slot.from_file() {
        "model file"
    } else {
        "startup"
    };
    let new = register_artifact(store, &current, actor, now_ms).await?;
    let aliases = store.model_aliases().await?;
    let champion = aliases.champion.as_ref().map(|c| c.version.as_str());
    if champion.is_none() || (new && slot.from_file() && champion != Some(&current.version)) {
        adopt(store, &current.version, champion, actor, now_ms).await?;
    }
    sync(store, slot).await?;
    Ok(())
}

/// After the model file changed: the file's model becomes champion (the operator put it
/// there), recorded as by `model file`.
pub async fn adopt_file(store: &Store, slot: &ModelSlot, now_ms: u64) -> Result<(), RegistryError> {
    let current = slot.current();
    register_artifact(store, &current, "model file", now_ms).await?;
    let aliases = store.model_aliases().await?;
    let champion = aliases.champion.as_ref().map(|c| c.version.as_str());
    if champion != Some(&current.version) {
        adopt(store, &current.version, champion, "model file", now_ms).await?;
    }
    Ok(())
}

async fn adopt(
    store: &Store,
    version: &str,
    previous: Option<&str>,
    actor: &str,
    now_ms: u64,
) -> Result<ModelChange, RegistryError> {
    Ok(store
        .change_models(&NewChange {
            actor,
            action: "adopt",
            version: Some(version),
            previous,
            gate: None,
            overridden: false,
            reason: None,
            at_ms: now_ms,
            moves: vec![AliasMove {
                alias: "champion",
                from: previous,
                to: Some(version),
            }],
        })
        .await?)
}

/// Puts in `slot` what the registry's aliases name; whether anything changed.
pub async fn sync(store: &Store, slot: &ModelSlot) -> Result<bool, RegistryError> {
    let aliases = store.model_aliases().await?;
    let mut changed = false;
    if let Some(c) = &aliases.champion {
        if c.version != slot.current().version {
            slot.put(load(store, &c.version).await?);
            changed = true;
        }
    }
    let held = slot.challenger().map(|c| c.version.clone());
    let wanted = aliases.challenger.as_ref().map(|c| c.version.clone());
    if held != wanted {
        slot.put_challenger(match &wanted {
            Some(v) => Some(load(store, v).await?),
            None => None,
        });
        changed = true;
    }
    Ok(changed)
}

/// Sets (or with `None` clears) the challenger, as `by`.
pub async fn set_challenger(
    store: &Store,
    slot: &ModelSlot,
    by: &str,
    version: Option<&str>,
    now_ms: u64,
) -> Result<ModelChange, RegistryError> {
    let aliases = store.model_aliases().await?;
    let held = aliases.challenger.as_ref().map(|c| c.version.as_str());
    let artifact = match version {
        Some(v) => {
            if aliases.champion.as_ref().is_some_and(|c| c.version == v) {
                return Err(RegistryError::Champion(v.to_owned()));
            }
            Some(load(store, v).await?)
        }
        None if held.is_none() => return Err(RegistryError::NoChallenger),
        None => None,
    };
    let change = store
        .change_models(&NewChange {
            actor: by,
            action: if version.is_some() {
                "challenger"
            } else {
                "clear_challenger"
            },
            version,
            previous: held,
            gate: None,
            overridden: false,
            reason: None,
            at_ms: now_ms,
            moves: vec![AliasMove {
                alias: "challenger",
                from: held,
                to: version,
            }],
        })
        .await?;
    slot.put_challenger(artifact);
    Ok(change)
}

/// The champion and challenger as the registry names them, from `slot` when it holds
/// them already.
async fn pair(
    store: &Store,
    slot: &ModelSlot,
    aliases: &Aliases,
) -> Result<Option<(Arc<ModelArtifact>, Arc<ModelArtifact>, u64)>, RegistryError> {
    let (Some(champion), Some(challenger)) = (&aliases.champion, &aliases.challenger) else {
        return Ok(None);
    };
    let held = slot.current();
    let champ = if held.version == champion.version {
        held
    } else {
        load(store, &champion.version).await?
    };
    let chall = match slot.challenger() {
        Some(c) if c.version == challenger.version => c,
        _ => load(store, &challenger.version).await?,
    };
    Ok(Some((champ, chall, challenger.since_ms.max(0) as u64)))
}

/// The challenger's gate now; `None` without a challenger.
pub async fn measure_gate(
    store: &Store,
    slot: &ModelSlot,
    config: &GateConfig,
    now_ms: u64,
) -> Result<Option<Gate>, RegistryError> {
    let aliases = store.model_aliases().await?;
    let Some((champion, challenger, since_ms)) = pair(store, slot, &aliases).await? else {
        return Ok(None);
    };
    let schema = schema_fingerprint();
    let mut outcomes = Vec::new();
    let mut after = 0;
    loop {
        let page = store.outcome_tickets(after, PAGE, since_ms).await?;
        for (id, t) in &page {
            after = *id;
            // Outcomes without a verdict or features score nothing; they are counted by
            // the label export, not here.
            if let Ok(row) = labels::row_of(t, &schema) {
                let v = FeatureVector(row.values);
                outcomes.push(Outcome {
                    champion: champion.probability(&v),
                    challenger: challenger.probability(&v),
                    fault: row.label,
                });
            }
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    let shadow = store
        .shadow_facts(&challenger.version, since_ms, DISAGREEMENTS)
        .await?;
    Ok(Some(gate::measure(
        &outcomes,
        shadow,
        Window {
            champion: &champion.version,
            challenger: &challenger.version,
            since_ms,
            now_ms,
        },
        config,
    )))
}

/// A promotion as asked for.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    /// The challenger as the asker saw it: promotion is refused if it changed.
    pub challenger: String,
    /// Promote even though the gate fails (needs a reason).
    #[serde(default, rename = "override")]
    pub override_gate: bool,
    /// Why, recorded with the promotion.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Promotes the challenger to champion if it passes its gate (or the gate is
/// overridden with a reason), as `by`; the challenger is cleared.
pub async fn promote(
    store: &Store,
    slot: &ModelSlot,
    config: &GateConfig,
    by: &str,
    p: &Promotion,
    now_ms: u64,
) -> Result<ModelChange, RegistryError> {
    let aliases = store.model_aliases().await?;
    let Some(challenger) = &aliases.challenger else {
        return Err(RegistryError::NoChallenger);
    };
    if challenger.version != p.challenger {
        return Err(RegistryError::Stale {
            seen: p.challenger.clone(),
            now: challenger.version.clone(),
        });
    }
    let reason = p.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let gate = measure_gate(store, slot, config, now_ms)
        .await?
        .ok_or(RegistryError::NoChallenger)?;
    if !gate.passed {
        if !p.override_gate {
            return Err(RegistryError::GateFailed(Box::new(gate)));
        }
        if reason.is_none() {
            return Err(RegistryError::NoReason);
        }
    }
    let champion = aliases.champion.as_ref().map(|c| c.version.as_str());
    let next = load(store, &challenger.version).await?;
    let change = store
        .change_models(&NewChange {
            actor: by,
            action: "promote",
            version: Some(&challenger.version),
            previous: champion,
            gate: Some(serde_json::to_string(&gate).expect("plain data")),
            overridden: !gate.passed,
            reason,
            at_ms: now_ms,
            moves: vec![
                AliasMove {
                    alias: "champion",
                    from: champion,
                    to: Some(&challenger.version),
                },
                AliasMove {
                    alias: "challenger",
                    from: Some(&challenger.version),
                    to: None,
                },
            ],
        })
        .await?;
    slot.put(next);
    slot.put_challenger(None);
    Ok(change)
}

/// Makes `version` (registered, not the champion) champion again, as `by`. A challenger
/// stays unless it is that version.
pub async fn rollback(
    store: &Store,
    slot: &ModelSlot,
    by: &str,
    version: &str,
    reason: Option<&str>,
    now_ms: u64,
) -> Result<ModelChange, RegistryError> {
    let aliases = store.model_aliases().await?;
    let champion = aliases.champion.as_ref().map(|c| c.version.as_str());
    if champion == Some(version) {
        return Err(RegistryError::Champion(version.to_owned()));
    }
    let next = load(store, version).await?;
    let mut moves = vec![AliasMove {
        alias: "champion",
        from: champion,
        to: Some(version),
    }];
    let clears = aliases
        .challenger
        .as_ref()
        .is_some_and(|c| c.version == version);
    if clears {
        moves.push(AliasMove {
            alias: "challenger",
            from: Some(version),
            to: None,
        });
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let change = store
        .change_models(&NewChange {
            actor: by,
            action: "rollback",
            version: Some(version),
            previous: champion,
            gate: None,
            overridden: false,
            reason,
            at_ms: now_ms,
            moves,
        })
        .await?;
    slot.put(next);
    if clears {
        slot.put_challenger(None);
    }
    Ok(change)
}
