//! Metrics computed from orch run records (durations, counts, percentiles, the critical
//! path, parallel efficiency).
//!
//! This crate is a placeholder until the metrics land: it holds no code yet. It will
//! depend on `orch-core` only.
