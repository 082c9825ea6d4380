//! Features, labelled data sets, training, evaluation, model artifacts and explanations.
//!
//! - [`features`]: the windowed feature functions, pure over plain data. The edge agent
//!   links only these (with `default-features = false`), never linfa.
//! - [`schema`] and [`history`]: the feature schema and the one implementation of the
//!   feature vector from a device's telemetry, shared by the trainer and cloud-ingest.
//! - [`dataset`] (feature `data`): the simulated data-set format firmware-sim writes.
//! - [`artifact`], [`logistic`], [`forest`] and [`evaluation`]'s types (feature `score`):
//!   the model file cloud-ingest loads, scoring and explanations, in plain Rust over
//!   the artifact's numbers; no linfa, no ndarray.
//! - [`labels`], [`split`], [`training`], [`rule`], the fitting halves of [`logistic`]
//!   and [`forest`], and the metrics of [`evaluation`] (feature `train`, on top of
//!   `score`): labelled rows, leak-free splits, the two model kinds fitted with linfa,
//!   metrics beside the hand rule.

#[cfg(feature = "data")]
pub mod dataset;
pub mod features;
pub mod history;
pub mod schema;

#[cfg(feature = "score")]
pub mod artifact;
#[cfg(feature = "score")]
pub mod calibration;
#[cfg(feature = "score")]
pub mod evaluation;
#[cfg(feature = "score")]
pub mod forest;
#[cfg(feature = "train")]
pub mod labels;
#[cfg(feature = "score")]
pub mod logistic;
#[cfg(feature = "train")]
pub mod rule;
#[cfg(feature = "train")]
pub mod split;
#[cfg(feature = "train")]
pub mod training;

#[cfg(feature = "score")]
pub use artifact::{ArtifactError, ModelArtifact};
pub use history::{DeviceHistory, FeatureVector};

/// Why training could not produce a model.
#[cfg(feature = "train")]
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The rows hold only one class.
    #[error("the training rows hold only one class; a model needs failing and healthy rows")]
    OneClass,
    /// The split left one side without rows of both classes.
    #[error("the split left no usable {0} rows; use more devices or days, or a longer window")]
    EmptySplit(&'static str),
    /// The rows span too little time for a split one horizon apart: usually a time
    /// column that counts cycles or hours read as milliseconds since 1970.
    #[error("the rows span {span} but the horizon is {horizon_days} days: the split needs training rows and validation rows one horizon apart, so several horizons of data. If the time column counts cycles, hours or seconds rather than ms since 1970, say so with --time-unit (and give --horizon in that unit)")]
    ShortSpan {
        /// The span, in words.
        span: String,
        /// The horizon.
        horizon_days: u32,
    },
    /// linfa refused the data or parameters.
    #[error("fitting failed: {0}")]
    Fit(String),
}
