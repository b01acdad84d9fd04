//! The original module's seven-stage ML pipeline, with real stages:
//! `load → validate → clean → feature_eng → split → train → evaluate`.
//!
//! The data is a small two-class CSV file (`examples/data/ml_samples.csv`: numeric
//! features `x1`, `x2`, a categorical `color`, a 0/1 `label`, and a few missing or
//! malformed cells). Each stage's result is the next stage's input, so the results of
//! the data stages carry the data along; the learning stages are in [`crate::ml_model`]:
//! a logistic regression trained by batch gradient descent.
//!
//! The stage order is the original module's, so scaling statistics are computed before the split,
//! over all rows; a production pipeline would fit them on the training rows only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orch::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ml_model::{self, Evaluation, Samples, TrainReport, input};
use crate::{BoxError, task_output};

/// The numeric feature columns.
pub const NUMERIC: [&str; 2] = ["x1", "x2"];
/// The categorical feature column.
pub const CATEGORY: &str = "color";
/// The label column (0 or 1).
pub const LABEL: &str = "label";

/// What `load` returns: the file's cells, `None` where a cell is empty.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Loaded {
    /// Column names.
    pub columns: Vec<String>,
    /// One entry per record.
    pub rows: Vec<Vec<Option<String>>>,
}

/// What `validate` found, per column.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// Records read.
    pub row_count: usize,
    /// Empty cells per column (the `nulls` check).
    pub nulls: BTreeMap<String, usize>,
    /// Cells of the wrong type per column (the `types` check).
    pub type_errors: BTreeMap<String, usize>,
    /// Records with no problem found.
    pub valid_rows: usize,
}

/// One cleaned record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The numeric features, in [`NUMERIC`] order.
    pub numeric: Vec<f64>,
    /// The category.
    pub category: String,
    /// The class, 0 or 1.
    pub label: u8,
}

/// What `clean` did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanReport {
    /// The method used (`standard` imputes, `drop` drops).
    pub method: String,
    /// Records kept.
    pub kept: usize,
    /// Records dropped (no usable label, or any problem with `drop`).
    pub dropped: usize,
    /// Cells filled in per column (the mean for numbers, the most common category).
    pub imputed: BTreeMap<String, usize>,
}

/// What the example computed: each stage's summary.
#[derive(Debug)]
pub struct Outcome {
    /// The run's records and metrics.
    pub result: WorkflowResult,
    /// From `validate`.
    pub validation: ValidationReport,
    /// From `clean`.
    pub cleaning: CleanReport,
    /// From `feature_eng`: the names of the engineered features.
    pub features: Vec<String>,
    /// From `split`: the sizes of the training and the test set.
    pub split: (usize, usize),
    /// From `train`.
    pub model: TrainReport,
    /// From `evaluate`.
    pub evaluation: Evaluation,
}

/// The seven-stage workflow over the CSV file at `path`.
pub fn workflow(path: &Path) -> Workflow {
    Workflow::new("ml_pipeline", "ML Pipeline")
        .task(
            Task::new("load", "load")
                .name("Load Data")
                .config(json!({"path": path.display().to_string()})),
        )
        .task(
            Task::new("validate", "validate")
                .name("Validate Data")
                .config(json!({"checks": ["nulls", "types"]}))
                .depends_on(["load"]),
        )
        .task(
            Task::new("clean", "clean")
                .name("Clean Data")
                .config(json!({"method": "standard"}))
                .depends_on(["validate"]),
        )
        .task(
            Task::new("feature_eng", "feature_eng")
                .name("Feature Engineering")
                .config(json!({"features": ["scaled", "encoded"]}))
                .depends_on(["clean"]),
        )
        .task(
            Task::new("split", "split")
                .name("Train/Test Split")
                .config(json!({"ratio": 0.8}))
                .depends_on(["feature_eng"]),
        )
        .task(
            Task::new("train", "train")
                .name("Train Model")
                .config(json!({"model": "logistic_regression"}))
                .depends_on(["split"]),
        )
        .task(
            Task::new("evaluate", "evaluate")
                .name("Evaluate Model")
                .config(json!({"metrics": ["accuracy", "f1"]}))
                .depends_on(["train"]),
        )
}

/// Registers the seven stages' handlers; `load` reads relative paths from `base_dir`.
pub fn register_handlers(engine: &WorkflowEngine, base_dir: &Path) {
    let base_dir = base_dir.to_path_buf();
    engine.register_handler("load", blocking(move |ctx| load(&ctx, &base_dir)));
    engine.register_handler("validate", |ctx: TaskContext| async move { validate(&ctx) });
    engine.register_handler("clean", |ctx: TaskContext| async move { clean(&ctx) });
    engine.register_handler("feature_eng", |ctx: TaskContext| async move {
        feature_eng(&ctx)
    });
    engine.register_handler(
        "split",
        |ctx: TaskContext| async move { ml_model::split(&ctx) },
    );
    engine.register_handler("train", blocking(|ctx| ml_model::train(&ctx)));
    engine.register_handler("evaluate", |ctx: TaskContext| async move {
        ml_model::evaluate(&ctx)
    });
}

/// Runs the pipeline over the CSV file at `path`.
pub async fn run(path: &Path) -> Result<Outcome, BoxError> {
    let engine = WorkflowEngine::new();
    register_handlers(&engine, crate::examples_dir());
    let result = engine.execute_workflow(&workflow(path)).await?;
    outcome(result)
}

/// Reads each stage's summary out of a completed run of the pipeline (task ids `load`
/// to `evaluate`).
pub fn outcome(result: WorkflowResult) -> Result<Outcome, BoxError> {
    let stage = |id: &str| task_output(&result, id);
    fn read<T: DeserializeOwned>(value: &Value) -> Result<T, BoxError> {
        Ok(T::deserialize(value)?)
    }
    #[derive(Deserialize)]
    struct FeatureNames {
        features: Vec<String>,
    }
    #[derive(Deserialize)]
    struct SplitSizes {
        train_size: usize,
        test_size: usize,
    }
    let validation = read(&stage("validate")?["report"])?;
    let cleaning = read(&stage("clean")?["report"])?;
    let features = read::<FeatureNames>(stage("feature_eng")?)?.features;
    let sizes: SplitSizes = read(stage("split")?)?;
    let model = read(&stage("train")?["report"])?;
    let evaluation = read(stage("evaluate")?)?;
    Ok(Outcome {
        validation,
        cleaning,
        features,
        split: (sizes.train_size, sizes.test_size),
        model,
        evaluation,
        result,
    })
}

fn load(ctx: &TaskContext, base_dir: &Path) -> Result<Value, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        path: PathBuf,
    }
    let path = base_dir.join(ctx.config_as::<Config>()?.path);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| TaskError::new(format!("cannot read {}: {e}", path.display())))?;
    let table = crate::csv::parse(&text).map_err(|e| TaskError::permanent(e.to_string()))?;
    let rows = table
        .rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|c| (!c.is_empty()).then_some(c))
                .collect()
        })
        .collect();
    Ok(serde_json::to_value(Loaded {
        columns: table.columns,
        rows,
    })?)
}

/// Where each expected column is in a loaded table.
struct Columns {
    numeric: Vec<usize>,
    category: usize,
    label: usize,
}

impl Columns {
    fn find(loaded: &Loaded) -> Result<Self, TaskError> {
        let find = |name: &str| {
            loaded
                .columns
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| TaskError::permanent(format!("the data has no `{name}` column")))
        };
        Ok(Self {
            numeric: NUMERIC
                .iter()
                .map(|name| find(name))
                .collect::<Result<_, _>>()?,
            category: find(CATEGORY)?,
            label: find(LABEL)?,
        })
    }
}

fn parse_number(cell: &str) -> Option<f64> {
    cell.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn parse_label(cell: &str) -> Option<u8> {
    cell.parse::<u8>().ok().filter(|&label| label <= 1)
}

fn validate(ctx: &TaskContext) -> Result<Value, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        checks: Vec<String>,
    }
    let checks = ctx.config_as::<Config>()?.checks;
    let (nulls, types) = (
        checks.iter().any(|c| c == "nulls"),
        checks.iter().any(|c| c == "types"),
    );
    if let Some(unknown) = checks
        .iter()
        .find(|c| !matches!(c.as_str(), "nulls" | "types"))
    {
        return Err(TaskError::permanent(format!("unknown check `{unknown}`")));
    }
    let loaded: Loaded = input(ctx)?;
    let columns = Columns::find(&loaded)?;
    let mut report = ValidationReport {
        row_count: loaded.rows.len(),
        ..ValidationReport::default()
    };
    for row in &loaded.rows {
        let mut valid = true;
        let mut check = |index: usize, well_typed: fn(&str) -> bool| {
            let name = &loaded.columns[index];
            match row.get(index).and_then(Option::as_deref) {
                None => {
                    valid = false;
                    if nulls {
                        *report.nulls.entry(name.clone()).or_default() += 1;
                    }
                }
                Some(cell) if !well_typed(cell) => {
                    valid = false;
                    if types {
                        *report.type_errors.entry(name.clone()).or_default() += 1;
                    }
                }
                Some(_) => {}
            }
        };
        for &index in &columns.numeric {
            check(index, |cell| parse_number(cell).is_some());
        }
        check(columns.category, |_| true);
        check(columns.label, |cell| parse_label(cell).is_some());
        report.valid_rows += usize::from(valid);
    }
    Ok(json!({"report": report, "data": loaded}))
}

fn clean(ctx: &TaskContext) -> Result<Value, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        method: String,
    }
    let method = ctx.config_as::<Config>()?.method;
    let impute = match method.as_str() {
        "standard" => true,
        "drop" => false,
        other => return Err(TaskError::permanent(format!("unknown method `{other}`"))),
    };
    #[derive(Deserialize)]
    struct Validated {
        data: Loaded,
    }
    let loaded = input::<Validated>(ctx)?.data;
    let columns = Columns::find(&loaded)?;
    let cell = |row: &[Option<String>], index: usize| row.get(index).cloned().flatten();

    // Rows without a usable label cannot be repaired.
    let labelled: Vec<(&Vec<Option<String>>, u8)> = loaded
        .rows
        .iter()
        .filter_map(|row| Some((row, parse_label(&cell(row, columns.label)?)?)))
        .collect();
    let means: Vec<f64> = columns
        .numeric
        .iter()
        .map(|&index| {
            let values: Vec<f64> = labelled
                .iter()
                .filter_map(|(row, _)| parse_number(&cell(row, index)?))
                .collect();
            values.iter().sum::<f64>() / values.len().max(1) as f64
        })
        .collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (row, _) in &labelled {
        if let Some(category) = cell(row, columns.category) {
            *counts.entry(category).or_default() += 1;
        }
    }
    // The most common category; on a tie the first by name.
    let mode = counts
        .iter()
        .rev()
        .max_by_key(|(_, n)| **n)
        .map(|(category, _)| category.clone())
        .unwrap_or_default();

    let mut report = CleanReport {
        method,
        ..CleanReport::default()
    };
    let mut records = Vec::with_capacity(labelled.len());
    let mut imputed = BTreeMap::<String, usize>::new();
    for (row, label) in &labelled {
        imputed.clear();
        let mut numeric = Vec::with_capacity(NUMERIC.len());
        for (slot, &index) in columns.numeric.iter().enumerate() {
            let value = cell(row, index).and_then(|c| parse_number(&c));
            numeric.push(value.unwrap_or_else(|| {
                *imputed.entry(NUMERIC[slot].to_owned()).or_default() += 1;
                means[slot]
            }));
        }
        let category = cell(row, columns.category).unwrap_or_else(|| {
            *imputed.entry(CATEGORY.to_owned()).or_default() += 1;
            mode.clone()
        });
        if !impute && !imputed.is_empty() {
            continue;
        }
        for (name, n) in &imputed {
            *report.imputed.entry(name.clone()).or_default() += n;
        }
        records.push(Record {
            numeric,
            category,
            label: *label,
        });
    }
    report.kept = records.len();
    report.dropped = loaded.rows.len() - records.len();
    Ok(json!({"report": report, "records": records}))
}

fn feature_eng(ctx: &TaskContext) -> Result<Value, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        features: Vec<String>,
    }
    let wanted = ctx.config_as::<Config>()?.features;
    if let Some(unknown) = wanted
        .iter()
        .find(|f| !matches!(f.as_str(), "scaled" | "encoded"))
    {
        return Err(TaskError::permanent(format!(
            "unknown feature kind `{unknown}`"
        )));
    }
    let (scaled, encoded) = (
        wanted.iter().any(|f| f == "scaled"),
        wanted.iter().any(|f| f == "encoded"),
    );
    #[derive(Deserialize)]
    struct Cleaned {
        records: Vec<Record>,
    }
    let records = input::<Cleaned>(ctx)?.records;
    if records.is_empty() {
        return Err(TaskError::permanent(
            "no records left to build features from",
        ));
    }
    if records.iter().any(|r| r.numeric.len() != NUMERIC.len()) {
        return Err(TaskError::permanent(
            "a record has the wrong number of values",
        ));
    }
    let n = records.len() as f64;
    // Standardisation: (x - mean) / standard deviation, per numeric column.
    let scaling: Vec<(f64, f64)> = (0..NUMERIC.len())
        .map(|j| {
            let mean = records.iter().map(|r| r.numeric[j]).sum::<f64>() / n;
            let var = records
                .iter()
                .map(|r| (r.numeric[j] - mean).powi(2))
                .sum::<f64>()
                / n;
            let std = var.sqrt();
            if scaled {
                (mean, if std > 0.0 { std } else { 1.0 })
            } else {
                (0.0, 1.0)
            }
        })
        .collect();
    let categories: Vec<String> = if encoded {
        let mut all: Vec<String> = records.iter().map(|r| r.category.clone()).collect();
        all.sort();
        all.dedup();
        all
    } else {
        Vec::new()
    };
    let suffix = if scaled { "_scaled" } else { "" };
    let mut features: Vec<String> = NUMERIC.iter().map(|c| format!("{c}{suffix}")).collect();
    features.extend(categories.iter().map(|c| format!("{CATEGORY}={c}")));
    let x: Vec<Vec<f64>> = records
        .iter()
        .map(|r| {
            let mut row: Vec<f64> = (r.numeric.iter().zip(&scaling))
                .map(|(value, (mean, std))| (value - mean) / std)
                .collect();
            row.extend(
                categories
                    .iter()
                    .map(|c| f64::from(u8::from(*c == r.category))),
            );
            row
        })
        .collect();
    let y = records.iter().map(|r| r.label).collect();
    Ok(json!({
        "features": features,
        "scaling": NUMERIC.iter().zip(&scaling)
            .map(|(c, (mean, std))| (c.to_string(), json!({"mean": mean, "std": std})))
            .collect::<BTreeMap<_, _>>(),
        "samples": Samples { x, y },
    }))
}

/// Prints each stage's summary, as the `ml_pipeline` and `from_file` examples do.
pub fn print(outcome: &Outcome) {
    println!("{} ({})", outcome.result.name, outcome.result.status);
    for (id, record) in outcome.result.tasks.iter() {
        let id = id.as_str();
        let millis = record.duration().map_or(0.0, |d| d.as_secs_f64() * 1e3);
        println!("  {id:<12} {:<9} {millis:>8.2} ms", record.status.as_str());
    }
    let v = &outcome.validation;
    println!(
        "validate: {} rows, {} valid; nulls {:?}; type errors {:?}",
        v.row_count, v.valid_rows, v.nulls, v.type_errors
    );
    let c = &outcome.cleaning;
    println!(
        "clean ({}): kept {}, dropped {}, imputed {:?}",
        c.method, c.kept, c.dropped, c.imputed
    );
    println!("feature_eng: {:?}", outcome.features);
    println!(
        "split: {} train / {} test",
        outcome.split.0, outcome.split.1
    );
    let m = &outcome.model;
    println!(
        "train ({}, {} epochs): loss {:.4}, train accuracy {:.3}",
        m.model, m.epochs, m.final_loss, m.train_accuracy
    );
    for (name, weight) in m.features.iter().zip(&m.fitted.weights) {
        println!("  w[{name}] = {weight:+.3}");
    }
    println!("  bias = {:+.3}", m.fitted.bias);
    let e = &outcome.evaluation;
    print!("evaluate on {} test samples:", e.test_size);
    for (name, value) in &e.metrics {
        print!(" {name} {value:.3}");
    }
    println!("\n  confusion: {:?}", e.confusion);
}
