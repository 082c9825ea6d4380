//! Simulated hardware and fleets, with ground-truth failure times, running the real agent code.
//!
//! Not built yet: this crate is reserved in the workspace layout of DESIGN.md and is
//! filled in by its own issue.
