//! Feature definitions, labelled data sets, linfa training, evaluation and model artifacts.
//!
//! Not built yet: this crate is reserved in the workspace layout of DESIGN.md and is
//! filled in by its own issue.
