//! The model file: the model, the feature schema it was trained on, the scaler, the prior
//! correction, the decision threshold, a summary of the training data and its metrics.
//! One JSON document, versioned; loading checks the schema against the running code.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::evaluation::Evaluation;
use crate::forest::Forest;
use crate::history::FeatureVector;
use crate::logistic::{sigmoid, LogisticModel};
use crate::schema::{self, FEATURES, FEATURE_COUNT};

/// The bundled default model, as JSON.
pub const BUNDLED_MODEL: &[u8] = include_bytes!("../default/risk-model.json");

/// The artifact format this build writes and reads.
pub const ARTIFACT_FORMAT: u32 = 1;

/// What can go wrong loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a model artifact.
    #[error("{path}: not a model artifact: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What serde said.
        message: String,
    },
    /// Written by a build with another artifact format.
    #[error("{path}: artifact format {found}, this build reads format {ARTIFACT_FORMAT}; retrain with this build")]
    Format {
        /// The file.
        path: String,
        /// The format in the file.
        found: u32,
    },
    /// Trained on other features than this build computes.
    #[error("{path}: the model was trained on feature schema {found}, this build computes schema {expected} ({detail}); retrain the model with this build")]
    SchemaMismatch {
        /// The file.
        path: String,
        /// The fingerprint in the file.
        found: String,
        /// This build's fingerprint.
        expected: String,
        /// Which features differ.
        detail: String,
    },
    /// Internally inconsistent (wrong lengths, a node pointing nowhere).
    #[error("{path}: damaged model: {source}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        source: DamageError,
    },
}

/// What is inconsistent inside a model.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DamageError(String);

/// The feature schema a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaInfo {
    /// [`schema::SCHEMA_VERSION`] at training.
    pub version: u32,
    /// [`schema::schema_fingerprint`] at training.
    pub fingerprint: String,
    /// Feature names in column order.
    pub features: Vec<String>,
}

impl SchemaInfo {
    /// The schema of this build.
    pub fn current() -> Self {
        SchemaInfo {
            version: schema::SCHEMA_VERSION,
            fingerprint: schema::schema_fingerprint(),
            features: FEATURES.iter().map(|f| f.name.to_string()).collect(),
        }
    }
}

/// Standardisation: `z = (x - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Per-feature mean of the training rows.
    pub mean: Vec<f64>,
    /// Per-feature standard deviation of the training rows (1 where it was 0).
    pub std: Vec<f64>,
}

impl Scaler {
    #[cfg(feature = "train")]
    /// Fits on the rows of `x`.
    pub fn fit(x: ndarray::ArrayView2<'_, f64>) -> Self {
        let n = x.nrows().max(1) as f64;
        let mean: Vec<f64> = x.columns().into_iter().map(|c| c.sum() / n).collect();
        let std = x
            .columns()
            .into_iter()
            .zip(&mean)
            .map(|(c, m)| {
                let var = c.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n;
                if var > 1e-12 {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        Scaler { mean, std }
    }

    /// Standardises one row.
    pub fn apply(&self, x: &[f64]) -> [f64; FEATURE_COUNT] {
        let mut z = [0.0; FEATURE_COUNT];
        for (j, v) in x.iter().enumerate().take(FEATURE_COUNT) {
            z[j] = (v - self.mean[j]) / self.std[j];
        }
        z
    }

    #[cfg(feature = "train")]
    /// Standardises every row of `x`.
    pub fn apply_all(&self, x: ndarray::ArrayView2<'_, f64>) -> ndarray::Array2<f64> {
        let mut z = x.to_owned();
        for mut row in z.rows_mut() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - self.mean[j]) / self.std[j];
            }
        }
        z
    }
}

/// The model itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    /// Logistic regression.
    Logistic(LogisticModel),
    /// A random forest of decision trees.
    Forest(Forest),
}

impl Model {
    /// `logistic` or `forest`.
    pub fn kind(&self) -> &'static str {
        match self {
            Model::Logistic(_) => "logistic",
            Model::Forest(_) => "forest",
        }
    }
}

/// Maps scores from the class balance the model was fitted on back to the fleet's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    /// Share of failing rows in what the model was fitted on (after resampling).
    pub fitted: f64,
    /// Share of failing rows in the training data as it came.
    pub population: f64,
}

impl Prior {
    /// Log-odds shift from the fitted balance to the population's.
    fn shift(&self) -> f64 {
        let logit = |p: f64| (p / (1.0 - p)).ln();
        logit(self.population.clamp(1e-9, 1.0 - 1e-9)) - logit(self.fitted.clamp(1e-9, 1.0 - 1e-9))
    }
}

/// The probability a model gives raw features `x`.
pub(crate) fn probability(scaler: &Scaler, model: &Model, prior: &Prior, x: &[f64]) -> f64 {
    let z = scaler.apply(x);
    let log_odds = match model {
        Model::Logistic(m) => m.log_odds(&z),
        Model::Forest(f) => {
            let p = f.share(&z).clamp(1e-6, 1.0 - 1e-6);
            (p / (1.0 - p)).ln()
        }
    };
    sigmoid(log_odds + prior.shift())
}

/// What the validation metrics of an artifact were measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationKind {
    /// Devices held out of training, at times after the training rows plus a gap.
    HeldOutDevicesLater,
    /// Out-of-fold scores of device folds (when the split held no failure).
    OutOfFold,
}

/// What the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// The data set (directory or CSV file).
    pub source: String,
    /// Label horizon, days.
    pub horizon_days: u32,
    /// Rows and failing rows the final model was fitted on.
    pub rows: usize,
    /// Failing rows among them.
    pub positive_rows: usize,
    /// Devices.
    pub devices: usize,
    /// Devices that failed.
    pub failed_devices: usize,
    /// Rows of the validation split and failing rows among them.
    pub validation_rows: usize,
    /// Failing rows of the validation split.
    pub validation_positive_rows: usize,
    /// What the validation metrics were measured on.
    pub validation_kind: ValidationKind,
    /// Schema features the data did not provide.
    #[serde(default)]
    pub absent_features: Vec<String>,
    /// Seed of the split and the model.
    pub seed: u64,
    /// Hyperparameters, as given.
    pub params: serde_json::Value,
}

/// A model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// [`ARTIFACT_FORMAT`].
    pub format: u32,
    /// `kind-YYYYMMDD-hash`: names this exact model in tickets and reports.
    pub version: String,
    /// When it was trained, RFC 3339.
    pub created_at: String,
    /// The feature schema.
    pub schema: SchemaInfo,
    /// The standardisation applied before the model.
    pub scaler: Scaler,
    /// The model.
    pub model: Model,
    /// The prior correction.
    pub prior: Prior,
    /// The calibration applied last, fitted on out-of-fold scores (the identity in
    /// artifacts trained before it).
    #[serde(default)]
    pub calibration: crate::calibration::Calibration,
    /// Calibrated scores at or above this raise an alarm.
    pub threshold: f64,
    /// The training data.
    pub training: TrainingSummary,
    /// Metrics on the held-out validation split.
    pub validation: Evaluation,
}

/// A risk score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    /// Estimated probability of failing within the horizon.
    pub probability: f64,
    /// Whether it reaches the model's threshold.
    pub alarm: bool,
}

/// One feature's part in a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    /// Feature name.
    pub feature: &'static str,
    /// Its unit.
    pub unit: &'static str,
    /// Its value.
    pub value: f64,
    /// How much it raised (positive) or lowered the score: log-odds for logistic,
    /// share of failing rows for a forest.
    pub contribution: f64,
}

/// A score with its top contributing features.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The score.
    pub score: Score,
    /// The features that raised it most, largest first.
    pub top: Vec<Contribution>,
}

impl ModelArtifact {
    /// Estimated probability of failing within the horizon for one feature vector:
    /// calibrated, so it reads as a probability.
    pub fn probability(&self, v: &FeatureVector) -> f64 {
        self.calibration.apply(self.raw_probability(v))
    }

    /// The probability before calibration (what the reliability table compares).
    pub fn raw_probability(&self, v: &FeatureVector) -> f64 {
        probability(&self.scaler, &self.model, &self.prior, &v.0)
    }

    /// The score of one feature vector.
    pub fn score(&self, v: &FeatureVector) -> Score {
        let probability = self.probability(v);
        Score {
            probability,
            alarm: probability >= self.threshold,
        }
    }

    /// The score and the `top` features that raised it most.
    pub fn explain(&self, v: &FeatureVector, top: usize) -> Explanation {
        let z = self.scaler.apply(&v.0);
        let contributions = match &self.model {
            Model::Logistic(m) => m.contributions(&z),
            Model::Forest(f) => f.contributions(&z),
        };
        let mut all: Vec<Contribution> = FEATURES
            .iter()
            .zip(contributions)
            .zip(v.0)
            .map(|((f, c), value)| Contribution {
                feature: f.name,
                unit: f.unit,
                value,
                contribution: c,
            })
            .collect();
        all.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        all.truncate(top);
        Explanation {
            score: self.score(v),
            top: all,
        }
    }

    /// The default model shipped in the repository (`models/default/`), trained on
    /// a simulated fleet; the main job runs on it without training first.
    pub fn bundled() -> Result<Self, ArtifactError> {
        Self::from_json(
            BUNDLED_MODEL,
            "bundled model (models/default/risk-model.json)",
        )
    }

    /// Writes the artifact as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), ArtifactError> {
        let io = |source| ArtifactError::Io {
            path: path.display().to_string(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(path, json).map_err(io)
    }

    /// Reads an artifact and checks it against this build.
    pub fn load(path: &Path) -> Result<Self, ArtifactError> {
        let bytes = std::fs::read(path).map_err(|source| ArtifactError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&bytes, &path.display().to_string())
    }

    /// Parses an artifact from JSON and checks it against this build; `origin` names it
    /// in errors.
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<Self, ArtifactError> {
        let path = origin.to_string();
        // Read the format first, so an old file says so rather than failing on a field.
        #[derive(Deserialize)]
        struct Head {
            format: u32,
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| ArtifactError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if head.format != ARTIFACT_FORMAT {
            return Err(ArtifactError::Format {
                path,
                found: head.format,
            });
        }
        let artifact: ModelArtifact =
            serde_json::from_slice(bytes).map_err(|e| ArtifactError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?;
        artifact.check_schema(&path)?;
        artifact
            .check_shape()
            .map_err(|source| ArtifactError::Damaged { path, source })?;
        Ok(artifact)
    }

    fn check_schema(&self, path: &str) -> Result<(), ArtifactError> {
        let current = SchemaInfo::current();
        if self.schema.fingerprint == current.fingerprint
            && self.schema.features == current.features
        {
            return Ok(());
        }
        let missing: Vec<&str> = current
            .features
            .iter()
            .filter(|f| !self.schema.features.contains(f))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = self
            .schema
            .features
            .iter()
            .filter(|f| !current.features.contains(f))
            .map(String::as_str)
            .collect();
        let detail = if missing.is_empty() && extra.is_empty() {
            if self.schema.features == current.features {
                "same names, different units, fill values or version".to_string()
            } else {
                "same names in a different order".to_string()
            }
        } else {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("the model lacks {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                parts.push(format!("the code no longer computes {}", extra.join(", ")));
            }
            parts.join("; ")
        };
        Err(ArtifactError::SchemaMismatch {
            path: path.to_string(),
            found: self.schema.fingerprint.clone(),
            expected: current.fingerprint,
            detail,
        })
    }

    fn check_shape(&self) -> Result<(), DamageError> {
        let n = FEATURE_COUNT;
        if self.scaler.mean.len() != n || self.scaler.std.len() != n {
            return Err(DamageError(format!(
                "scaler has {} means and {} deviations for {n} features",
                self.scaler.mean.len(),
                self.scaler.std.len()
            )));
        }
        if self.scaler.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(DamageError(
                "a scaler deviation is not a positive number".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(DamageError(format!(
                "threshold {} is not a probability",
                self.threshold
            )));
        }
        match &self.model {
            Model::Logistic(m) if m.coef.len() != n => Err(DamageError(format!(
                "{} coefficients for {n} features",
                m.coef.len()
            ))),
            Model::Logistic(_) => Ok(()),
            Model::Forest(f) => {
                if f.trees.is_empty() {
                    return Err(DamageError("a forest without trees".into()));
                }
                for (t, tree) in f.trees.iter().enumerate() {
                    let len = tree.nodes.len();
                    if len == 0 {
                        return Err(DamageError(format!("tree {t} has no nodes")));
                    }
                    for (i, node) in tree.nodes.iter().enumerate() {
                        let leaf = node.2 == 0;
                        // Children come after their parent, so walking always ends.
                        let bad_child = |c: u32| (c as usize) <= i || c as usize >= len;
                        if !leaf
                            && (usize::from(node.0) >= n || bad_child(node.2) || bad_child(node.3))
                        {
                            return Err(DamageError(format!(
                                "tree {t} node {i} points outside the tree"
                            )));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}
