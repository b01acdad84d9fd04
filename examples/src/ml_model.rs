//! The learning stages of [`crate::ml_pipeline`]: a deterministic train/test split, a
//! logistic regression trained by batch gradient descent, and its evaluation.

use std::collections::BTreeMap;

use orch::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Feature rows and their 0/1 labels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    /// One feature vector per sample.
    pub x: Vec<Vec<f64>>,
    /// One label per sample.
    pub y: Vec<u8>,
}

/// A logistic regression: `p(label = 1) = sigmoid(weights · x + bias)`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub bias: f64,
}

impl Model {
    /// The probability that `x` is of class 1.
    pub fn probability(&self, x: &[f64]) -> f64 {
        let z: f64 = self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>() + self.bias;
        1.0 / (1.0 + (-z).exp())
    }

    /// The predicted class of `x` (threshold 0.5).
    pub fn predict(&self, x: &[f64]) -> u8 {
        u8::from(self.probability(x) >= 0.5)
    }

    /// The mean log loss over `samples`.
    pub fn loss(&self, samples: &Samples) -> f64 {
        let n = samples.y.len().max(1) as f64;
        let eps = 1e-12;
        let total: f64 = samples
            .x
            .iter()
            .zip(&samples.y)
            .map(|(x, &y)| {
                let p = self.probability(x).clamp(eps, 1.0 - eps);
                if y == 1 { -p.ln() } else { -(1.0 - p).ln() }
            })
            .sum();
        total / n
    }

    /// The share of `samples` predicted correctly.
    pub fn accuracy(&self, samples: &Samples) -> f64 {
        let right = (samples.x.iter().zip(&samples.y))
            .filter(|(x, y)| self.predict(x) == **y)
            .count();
        right as f64 / samples.y.len().max(1) as f64
    }
}

/// Fits a logistic regression with full-batch gradient descent from all-zero weights
/// (so the result is deterministic), with an optional L2 penalty on the weights.
pub fn fit(samples: &Samples, learning_rate: f64, epochs: u32, l2: f64) -> Model {
    let dims = samples.x.first().map_or(0, Vec::len);
    let n = samples.y.len().max(1) as f64;
    let mut model = Model {
        weights: vec![0.0; dims],
        bias: 0.0,
    };
    let mut gradient = vec![0.0; dims];
    for _ in 0..epochs {
        gradient.iter_mut().for_each(|g| *g = 0.0);
        let mut gradient_bias = 0.0;
        for (x, &y) in samples.x.iter().zip(&samples.y) {
            let error = model.probability(x) - f64::from(y);
            for (g, v) in gradient.iter_mut().zip(x) {
                *g += error * v;
            }
            gradient_bias += error;
        }
        for (w, g) in model.weights.iter_mut().zip(&gradient) {
            *w -= learning_rate * (g / n + l2 * *w);
        }
        model.bias -= learning_rate * gradient_bias / n;
    }
    model
}

/// A small deterministic pseudo-random generator (SplitMix64).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`); the slight modulo bias does not matter here.
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Splits `samples` into a training and a test set: shuffled with `seed` (Fisher-Yates),
/// the first `ratio` of them (rounded) for training.
pub fn split_samples(samples: &Samples, ratio: f64, seed: u64) -> (Samples, Samples) {
    let mut order: Vec<usize> = (0..samples.y.len()).collect();
    let mut rng = SplitMix64(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let cut = ((order.len() as f64) * ratio.clamp(0.0, 1.0)).round() as usize;
    let pick = |indices: &[usize]| Samples {
        x: indices.iter().map(|&i| samples.x[i].clone()).collect(),
        y: indices.iter().map(|&i| samples.y[i]).collect(),
    };
    (pick(&order[..cut]), pick(&order[cut..]))
}

/// The counts of a binary confusion matrix (class 1 is positive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Predicted 1, labelled 1.
    pub true_positive: usize,
    /// Predicted 1, labelled 0.
    pub false_positive: usize,
    /// Predicted 0, labelled 0.
    pub true_negative: usize,
    /// Predicted 0, labelled 1.
    pub false_negative: usize,
}

impl Confusion {
    /// Counts `model`'s predictions on `samples`.
    pub fn of(model: &Model, samples: &Samples) -> Self {
        let mut c = Self::default();
        for (x, &y) in samples.x.iter().zip(&samples.y) {
            match (model.predict(x), y) {
                (1, 1) => c.true_positive += 1,
                (1, _) => c.false_positive += 1,
                (_, 1) => c.false_negative += 1,
                _ => c.true_negative += 1,
            }
        }
        c
    }

    /// A metric by name: `accuracy`, `precision`, `recall` or `f1` (0 where undefined).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (tp, fp, tn, fn_) = (
            self.true_positive,
            self.false_positive,
            self.true_negative,
            self.false_negative,
        );
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        Some(match name {
            "accuracy" => ratio(tp + tn, tp + fp + tn + fn_),
            "precision" => precision,
            "recall" => recall,
            "f1" if precision + recall > 0.0 => 2.0 * precision * recall / (precision + recall),
            "f1" => 0.0,
            _ => return None,
        })
    }
}

/// What `train` reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The model kind (`logistic_regression`).
    pub model: String,
    /// The feature names, in weight order.
    pub features: Vec<String>,
    /// The fitted model.
    pub fitted: Model,
    /// Gradient descent epochs run.
    pub epochs: u32,
    /// Mean log loss on the training set after training.
    pub final_loss: f64,
    /// Accuracy on the training set.
    pub train_accuracy: f64,
}

/// What `evaluate` returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Samples in the test set.
    pub test_size: usize,
    /// The requested metrics, by name.
    pub metrics: BTreeMap<String, f64>,
    /// Predictions against labels on the test set.
    pub confusion: Confusion,
}

/// The result of a stage's one dependency: each pipeline stage reads the previous one.
pub(crate) fn input<T: serde::de::DeserializeOwned>(ctx: &TaskContext) -> Result<T, TaskError> {
    let (id, _) = ctx
        .dependency_results()
        .next()
        .ok_or_else(|| TaskError::permanent("this stage needs the previous stage's result"))?;
    ctx.input(id.as_str())
}

/// The `split` stage: `{"ratio": 0.8, "seed": 7}` (seed optional).
pub fn split(ctx: &TaskContext) -> Result<Value, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        ratio: f64,
        #[serde(default = "default_seed")]
        seed: u64,
    }
    fn default_seed() -> u64 {
        7
    }
    #[derive(Deserialize)]
    struct Features {
        features: Vec<String>,
        samples: Samples,
    }
    let config: Config = ctx.config_as()?;
    if !(config.ratio > 0.0 && config.ratio < 1.0) {
        return Err(TaskError::permanent("ratio must be between 0 and 1"));
    }
    let input: Features = input(ctx)?;
    let (train, test) = split_samples(&input.samples, config.ratio, config.seed);
    if train.y.is_empty() || test.y.is_empty() {
        return Err(TaskError::permanent("too few samples to split"));
    }
    Ok(json!({
        "ratio": config.ratio,
        "seed": config.seed,
        "features": input.features,
        "train_size": train.y.len(),
        "test_size": test.y.len(),
        "train": train,
        "test": test,
    }))
}

/// The `train` stage: `{"model": "logistic_regression", "learning_rate": 0.5,
/// "epochs": 300, "l2": 0.0}` (all but `model` optional, defaults shown). Its result
/// carries the test set on to `evaluate`.
pub fn train(ctx: &TaskContext) -> Result<Value, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        model: String,
        #[serde(default = "default_rate")]
        learning_rate: f64,
        #[serde(default = "default_epochs")]
        epochs: u32,
        #[serde(default)]
        l2: f64,
    }
    fn default_rate() -> f64 {
        0.5
    }
    fn default_epochs() -> u32 {
        300
    }
    #[derive(Deserialize)]
    struct Split {
        features: Vec<String>,
        train: Samples,
        test: Samples,
    }
    let config: Config = ctx.config_as()?;
    if config.model != "logistic_regression" {
        return Err(TaskError::permanent(format!(
            "unsupported model `{}` (this example trains `logistic_regression`)",
            config.model
        )));
    }
    if !(config.learning_rate.is_finite() && config.learning_rate > 0.0 && config.l2 >= 0.0) {
        return Err(TaskError::permanent("invalid learning_rate or l2"));
    }
    let input: Split = input(ctx)?;
    let fitted = fit(&input.train, config.learning_rate, config.epochs, config.l2);
    let report = TrainReport {
        model: config.model,
        features: input.features,
        final_loss: fitted.loss(&input.train),
        train_accuracy: fitted.accuracy(&input.train),
        epochs: config.epochs,
        fitted,
    };
    Ok(json!({"report": report, "test": input.test}))
}

/// The `evaluate` stage: `{"metrics": ["accuracy", "f1"]}`, any of `accuracy`,
/// `precision`, `recall`, `f1`, computed on the test set.
pub fn evaluate(ctx: &TaskContext) -> Result<Value, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        metrics: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Trained {
        report: TrainReport,
        test: Samples,
    }
    let config: Config = ctx.config_as()?;
    let input: Trained = input(ctx)?;
    let confusion = Confusion::of(&input.report.fitted, &input.test);
    let mut metrics = BTreeMap::new();
    for name in config.metrics {
        let value = confusion
            .metric(&name)
            .ok_or_else(|| TaskError::permanent(format!("unknown metric `{name}`")))?;
        metrics.insert(name, value);
    }
    Ok(serde_json::to_value(Evaluation {
        test_size: input.test.y.len(),
        metrics,
        confusion,
    })?)
}
