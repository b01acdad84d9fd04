//! The original module's seven-stage ML pipeline on `examples/data/ml_samples.csv`:
//! `load → validate → clean → feature_eng → split → train → evaluate`, each stage reading
//! the one before it. Prints what each stage did and the model's test accuracy and F1.
//!
//! The data has numeric features `x1`, `x2`, a category `color` and a 0/1 `label`, with a
//! few empty or malformed cells. The model is deliberately simple, since the pipeline is
//! the point: a nearest-centroid classifier (the mean feature vector of each class; a
//! sample gets the class whose mean is closer).
//!
//! `cargo run --example ml_pipeline`

use std::collections::BTreeMap;
use std::path::Path;

use orch::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[path = "support/mod.rs"]
pub(crate) mod support;

use support::{BoxError, task_output};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let outcome = run(&support::data_file("ml_samples.csv")).await?;
    print(&outcome);
    Ok(())
}

/// The seven-stage workflow over the CSV file at `path`.
pub(crate) fn workflow(path: &Path) -> Workflow {
    let stage = |id: &str, name: &str, config: Value| Task::new(id, id).name(name).config(config);
    Workflow::new("ml_pipeline", "ML Pipeline")
        .task(stage(
            "load",
            "Load Data",
            json!({"path": path.display().to_string()}),
        ))
        .task(stage("validate", "Validate Data", json!({})).depends_on(["load"]))
        .task(stage("clean", "Clean Data", json!({"method": "standard"})).depends_on(["validate"]))
        .task(stage("feature_eng", "Feature Engineering", json!({})).depends_on(["clean"]))
        .task(stage("split", "Train/Test Split", json!({"ratio": 0.8})).depends_on(["feature_eng"]))
        .task(
            stage("train", "Train Model", json!({"model": "nearest_centroid"}))
                .depends_on(["split"]),
        )
        .task(stage("evaluate", "Evaluate Model", json!({})).depends_on(["train"]))
}

/// Registers the seven stages' handlers. Each returns JSON: a `report` the outcome
/// reads, and the data the next stage works on.
pub(crate) fn register_handlers(engine: &WorkflowEngine) {
    engine.register_handler("load", blocking(|ctx| load(&ctx)));
    engine.register_handler("validate", |ctx: TaskContext| async move { validate(&ctx) });
    engine.register_handler("clean", |ctx: TaskContext| async move { clean(&ctx) });
    engine.register_handler("feature_eng", |ctx: TaskContext| async move {
        feature_eng(&ctx)
    });
    engine.register_handler("split", |ctx: TaskContext| async move { split(&ctx) });
    engine.register_handler("train", blocking(|ctx| train(&ctx)));
    engine.register_handler("evaluate", |ctx: TaskContext| async move { evaluate(&ctx) });
}

/// The stages whose reports [`Outcome`] keeps, in pipeline order.
const REPORTING: [&str; 6] = [
    "validate",
    "clean",
    "feature_eng",
    "split",
    "train",
    "evaluate",
];

/// Each stage's report, read out of a run.
pub(crate) struct Outcome {
    pub(crate) result: WorkflowResult,
    pub(crate) reports: BTreeMap<&'static str, Value>,
}

/// Runs the pipeline over the CSV file at `path`.
pub(crate) async fn run(path: &Path) -> Result<Outcome, BoxError> {
    let engine = WorkflowEngine::new();
    register_handlers(&engine);
    outcome(engine.execute_workflow(&workflow(path)).await?)
}

/// Reads each stage's `report` out of a completed run.
pub(crate) fn outcome(result: WorkflowResult) -> Result<Outcome, BoxError> {
    let mut reports = BTreeMap::new();
    for id in REPORTING {
        reports.insert(id, task_output(&result, id)?["report"].clone());
    }
    Ok(Outcome { result, reports })
}

/// Prints each task's status and each stage's report.
pub(crate) fn print(outcome: &Outcome) {
    println!("{} ({})", outcome.result.name, outcome.result.status);
    for (id, record) in outcome.result.tasks.iter() {
        println!("  {:<12} {}", id.as_str(), record.status);
    }
    for id in REPORTING {
        println!("{id}: {}", outcome.reports[id]);
    }
}

/// A row of the file: `id,x1,x2,color,label`, empty cells as empty strings.
type Row = Vec<String>;
const COLUMNS: [&str; 5] = ["id", "x1", "x2", "color", "label"];

/// One cleaned sample: the numbers, the color and the class.
#[derive(Serialize, Deserialize)]
struct Sample {
    x: Vec<f64>,
    color: String,
    label: u8,
}

fn number(cell: &str) -> Option<f64> {
    cell.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn label(cell: &str) -> Option<u8> {
    cell.parse::<u8>().ok().filter(|&label| label <= 1)
}

fn config<T: DeserializeOwned>(ctx: &TaskContext, key: &str) -> Result<T, TaskError> {
    let value = ctx.config().get(key).cloned().unwrap_or_default();
    serde_json::from_value(value).map_err(|e| TaskError::permanent(format!("config `{key}`: {e}")))
}

/// Field `key` of the result of stage `id` (the previous stage, or any other ancestor).
fn input<T: DeserializeOwned>(ctx: &TaskContext, id: &str, key: &str) -> Result<T, TaskError> {
    let mut result: Value = ctx.input(id)?;
    Ok(serde_json::from_value(result[key].take())?)
}

fn load(ctx: &TaskContext) -> Result<Value, TaskError> {
    let path: String = config(ctx, "path")?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| TaskError::new(format!("cannot read {path}: {e}")))?;
    let mut rows: Vec<Row> = Vec::new();
    for (line, text) in (1..).zip(text.lines()) {
        let row: Row = text.split(',').map(|cell| cell.trim().to_owned()).collect();
        if row.len() != COLUMNS.len() || (line == 1 && row != COLUMNS) {
            return Err(TaskError::permanent(format!(
                "{path} line {line}: `{text}`"
            )));
        }
        if line > 1 {
            rows.push(row);
        }
    }
    Ok(json!({"report": {"rows": rows.len()}, "rows": rows}))
}

/// Counts the empty and the malformed cells per column.
fn validate(ctx: &TaskContext) -> Result<Value, TaskError> {
    let rows: Vec<Row> = input(ctx, "load", "rows")?;
    let well_typed = [
        |_: &str| true,
        |c: &str| number(c).is_some(),
        |c: &str| number(c).is_some(),
        |_: &str| true,
        |c: &str| label(c).is_some(),
    ];
    let mut nulls: BTreeMap<&str, usize> = BTreeMap::new();
    let mut type_errors: BTreeMap<&str, usize> = BTreeMap::new();
    let mut valid_rows = 0;
    for row in &rows {
        let mut valid = true;
        for ((cell, name), check) in row.iter().zip(COLUMNS).zip(well_typed) {
            let problems = if cell.is_empty() {
                &mut nulls
            } else if !check(cell) {
                &mut type_errors
            } else {
                continue;
            };
            *problems.entry(name).or_default() += 1;
            valid = false;
        }
        valid_rows += usize::from(valid);
    }
    let report = json!({"row_count": rows.len(), "valid_rows": valid_rows, "nulls": nulls, "type_errors": type_errors});
    Ok(json!({"report": report, "rows": rows}))
}

/// Drops the rows without a usable label; with `standard`, fills a missing number with
/// its column's mean and a missing color with `unknown`, with `drop` drops those rows too.
fn clean(ctx: &TaskContext) -> Result<Value, TaskError> {
    let method: String = config(ctx, "method")?;
    if !matches!(method.as_str(), "standard" | "drop") {
        return Err(TaskError::permanent(format!("unknown method `{method}`")));
    }
    let rows: Vec<Row> = input(ctx, "validate", "rows")?;
    let labelled: Vec<(&Row, u8)> = rows
        .iter()
        .filter_map(|r| Some((r, label(&r[4])?)))
        .collect();
    let mean = |column: usize| {
        let values: Vec<f64> = labelled
            .iter()
            .filter_map(|(r, _)| number(&r[column]))
            .collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    let means = [mean(1), mean(2)];
    let mut imputed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut samples = Vec::new();
    for (row, label) in labelled {
        let mut missing = Vec::new();
        let x = [1, 2].map(|column| {
            number(&row[column]).unwrap_or_else(|| {
                missing.push(COLUMNS[column]);
                means[column - 1]
            })
        });
        if row[3].is_empty() {
            missing.push("color");
        }
        if method == "drop" && !missing.is_empty() {
            continue;
        }
        for name in missing {
            *imputed.entry(name).or_default() += 1;
        }
        let color = if row[3].is_empty() {
            "unknown"
        } else {
            &row[3]
        };
        samples.push(Sample {
            x: x.to_vec(),
            color: color.to_owned(),
            label,
        });
    }
    let report = json!({"method": method, "kept": samples.len(), "dropped": rows.len() - samples.len(), "imputed": imputed});
    Ok(json!({"report": report, "samples": samples}))
}

/// Standardises `x1` and `x2` ((x - mean) / standard deviation) and adds a 0/1 feature
/// per color.
fn feature_eng(ctx: &TaskContext) -> Result<Value, TaskError> {
    let samples: Vec<Sample> = input(ctx, "clean", "samples")?;
    if samples.is_empty() {
        return Err(TaskError::permanent(
            "no samples left to build features from",
        ));
    }
    let n = samples.len() as f64;
    let scaling: Vec<(f64, f64)> = (0..2)
        .map(|j| {
            let mean = samples.iter().map(|s| s.x[j]).sum::<f64>() / n;
            let var = samples.iter().map(|s| (s.x[j] - mean).powi(2)).sum::<f64>() / n;
            (mean, if var > 0.0 { var.sqrt() } else { 1.0 })
        })
        .collect();
    let mut colors: Vec<&str> = samples.iter().map(|s| s.color.as_str()).collect();
    colors.sort_unstable();
    colors.dedup();
    let mut features = vec!["x1_scaled".to_owned(), "x2_scaled".to_owned()];
    features.extend(colors.iter().map(|c| format!("color={c}")));
    let encoded: Vec<Sample> = samples
        .iter()
        .map(|s| {
            let mut x: Vec<f64> =
                s.x.iter()
                    .zip(&scaling)
                    .map(|(v, (m, sd))| (v - m) / sd)
                    .collect();
            x.extend(colors.iter().map(|c| f64::from(u8::from(*c == s.color))));
            Sample {
                x,
                color: s.color.clone(),
                label: s.label,
            }
        })
        .collect();
    Ok(json!({"report": {"features": features}, "samples": encoded}))
}

/// The first `ratio` of the samples train, the rest test.
fn split(ctx: &TaskContext) -> Result<Value, TaskError> {
    let ratio: f64 = config(ctx, "ratio")?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(TaskError::permanent("`ratio` must be between 0 and 1"));
    }
    let mut train: Vec<Sample> = input(ctx, "feature_eng", "samples")?;
    let test = train.split_off((train.len() as f64 * ratio).round() as usize);
    let report = json!({"train_size": train.len(), "test_size": test.len()});
    Ok(json!({"report": report, "train": train, "test": test}))
}

/// The class of `x`: the one whose centroid is nearer (class 0 on a tie).
fn predict(centroids: &[Vec<f64>; 2], x: &[f64]) -> u8 {
    let distance = |c: &Vec<f64>| c.iter().zip(x).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
    u8::from(distance(&centroids[1]) < distance(&centroids[0]))
}

fn train(ctx: &TaskContext) -> Result<Value, TaskError> {
    let model: String = config(ctx, "model")?;
    if model != "nearest_centroid" {
        return Err(TaskError::permanent(format!("unsupported model `{model}`")));
    }
    let samples: Vec<Sample> = input(ctx, "split", "train")?;
    let centroid = |class: u8| {
        let of_class: Vec<&Sample> = samples.iter().filter(|s| s.label == class).collect();
        let width = samples.first().map_or(0, |s| s.x.len());
        (0..width)
            .map(|j| of_class.iter().map(|s| s.x[j]).sum::<f64>() / of_class.len().max(1) as f64)
            .collect::<Vec<f64>>()
    };
    let centroids = [centroid(0), centroid(1)];
    let right = samples
        .iter()
        .filter(|s| predict(&centroids, &s.x) == s.label)
        .count();
    let accuracy = right as f64 / samples.len().max(1) as f64;
    let report = json!({"model": model, "train_accuracy": accuracy});
    Ok(json!({"report": report, "centroids": centroids}))
}

/// Accuracy, F1 and the confusion counts on the test samples. The test set comes from
/// `split`, two stages up: any ancestor's result can be read.
fn evaluate(ctx: &TaskContext) -> Result<Value, TaskError> {
    let centroids: [Vec<f64>; 2] = input(ctx, "train", "centroids")?;
    let test: Vec<Sample> = input(ctx, "split", "test")?;
    let mut confusion = [[0usize; 2]; 2]; // [label][prediction]
    for sample in &test {
        confusion[usize::from(sample.label)][usize::from(predict(&centroids, &sample.x))] += 1;
    }
    let [[tn, fp], [fn_, tp]] = confusion.map(|row| row.map(|n| n as f64));
    let accuracy = (tp + tn) / (test.len().max(1) as f64);
    let f1 = if tp > 0.0 {
        2.0 * tp / (2.0 * tp + fp + fn_)
    } else {
        0.0
    };
    let report =
        json!({"test_size": test.len(), "accuracy": accuracy, "f1": f1, "confusion": confusion});
    Ok(json!({ "report": report }))
}
