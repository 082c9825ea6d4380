//! Runs the cohort watch over the store: on a schedule inside `serve`, and on demand.
