//! orch's runnable examples (`cargo run --example NAME`). Each example is one file beside
//! this directory, `examples/NAME.rs`, holding its handlers, its workflow and its `main`;
//! only helpers that are not about orch (an error type, reading one task's output, where
//! the data files are) live in `examples/support/mod.rs`. Each is tested by
//! `examples/tests/NAME.rs`, which includes the example's file. This library is empty: a
//! package needs a library or a binary besides its examples.
//!
//! | example | what it shows |
//! | --- | --- |
//! | `data_pipeline` | two tasks: read a CSV file, aggregate it per region or product |
//! | `ml_pipeline` | seven stages from a CSV file to an evaluated (nearest-centroid) model |
//! | `from_file` | the ML pipeline read from a YAML workflow file |
//! | `doc_processing` | fetch, extract, gzip and store a document |
//! | `agent_workflow` | analyze, compress, store; a stage reads an ancestor's output |
//! | `parallel` | three branches overlapping within a concurrency limit |
//! | `failure_handling` | retries with backoff, a permanent error, skipped dependents |
//! | `events` | every lifecycle event of a run printed as it arrives from the bus |
//! | `metrics_exporter` | per task type metrics in Prometheus text |
//! | `durable` | a slow pipeline stopped halfway and resumed from its journal |
//! | `pipeline_rules` | trigger rules, a branch, a pool and priorities |
//! | `fan_out_cache` | a map over a run-time list, then cached results |
//! | `show_plan` | a workflow file's execution order and levels |
