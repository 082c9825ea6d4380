//! Features, labelled data sets, training, evaluation, model artifacts and explanations.
//!
//! - [`features`]: the windowed feature functions, pure over plain data. The edge agent
//!   links only these (with `default-features = false`), never linfa.
//! - [`schema`] and [`history`]: the feature schema and the one implementation of the
//!   feature vector from a device's telemetry, shared by the trainer and cloud-ingest.
//! - [`dataset`] (feature `data`): the simulated data-set format firmware-sim writes.
//! - [`labels`], [`split`], [`logistic`], [`forest`], [`training`], [`evaluation`],
//!   [`rule`] and [`artifact`] (feature `train`): labelled rows, leak-free splits, the
//!   two model kinds built on linfa, metrics beside the hand rule, and the model file
//!   cloud-ingest loads.

#[cfg(feature = "data")]
pub mod dataset;
pub mod features;
pub mod history;
pub mod schema;

#[cfg(feature = "train")]
pub mod artifact;
#[cfg(feature = "train")]
pub mod evaluation;
#[cfg(feature = "train")]
pub mod forest;
#[cfg(feature = "train")]
pub mod labels;
#[cfg(feature = "train")]
pub mod logistic;
#[cfg(feature = "train")]
pub mod rule;
#[cfg(feature = "train")]
pub mod split;
#[cfg(feature = "train")]
pub mod training;

#[cfg(feature = "train")]
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
    /// linfa refused the data or parameters.
    #[error("fitting failed: {0}")]
    Fit(String),
}
