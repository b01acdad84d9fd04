//! The orch event bus: publish events on dotted subjects, subscribe with NATS-style
//! wildcard patterns.
//!
//! This crate is a placeholder until the bus lands: it holds no code yet. It will know
//! nothing of workflows, so an application can use it alone as its bus.
