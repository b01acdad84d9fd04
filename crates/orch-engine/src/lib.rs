//! The orch executor: runs a validated workflow's tasks on tokio, each through the handler
//! registered for its type.
//!
//! This crate is a placeholder until the engine lands: it holds no code yet.
