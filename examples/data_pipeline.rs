//! The original module's main example: `fetch_task` reads the orders in
//! `examples/data/sales.csv`, `process_task` aggregates them (orders, units and revenue
//! per region or per product). Prints the run's result JSON, the totals and the metrics.
//!
//! `cargo run --example data_pipeline [-- region|product]`

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use orch::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[path = "support/mod.rs"]
pub(crate) mod support;

use support::{BoxError, task_output};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let group_by = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "region".to_owned());
    let outcome = run(&support::data_file("sales.csv"), &group_by).await?;
    println!("{}", outcome.result.to_json_pretty());

    let summary = &outcome.summary;
    println!("\nrevenue by {}:", summary.group_by);
    let groups = summary.groups.iter().map(|(name, t)| (name.as_str(), t));
    for (name, totals) in groups.chain([("total", &summary.total)]) {
        println!(
            "  {name:<10} {:>3} orders {:>4} units {:>9.2}",
            totals.orders,
            totals.units,
            totals.revenue_cents as f64 / 100.0
        );
    }
    let metrics = outcome.result.metrics();
    println!("\nmetrics:\n{}", serde_json::to_string_pretty(&metrics)?);
    Ok(())
}

/// The two-task workflow, reading `source` and grouping by `group_by`.
pub(crate) fn workflow(source: &Path, group_by: &str) -> Workflow {
    Workflow::new("data_pipeline", "Data Processing Pipeline")
        .task(
            Task::new("fetch_task", "fetch")
                .name("Fetch Data")
                .config(json!({"source": source.display().to_string()})),
        )
        .task(
            Task::new("process_task", "process")
                .name("Process Data")
                .config(json!({"method": "aggregation", "group_by": group_by}))
                .depends_on(["fetch_task"]),
        )
}

/// Registers the `fetch` and `process` handlers on `engine`.
pub(crate) fn register_handlers(engine: &WorkflowEngine) {
    engine.register_handler("fetch", blocking(fetch));
    engine.register_handler("process", |ctx: TaskContext| async move { process(&ctx) });
}

/// What the example computed: the run, and the aggregation `process_task` returned.
pub(crate) struct Outcome {
    pub(crate) result: WorkflowResult,
    pub(crate) summary: Summary,
}

/// Runs the pipeline over `source` (a sales CSV file), grouped by `group_by`.
pub(crate) async fn run(source: &Path, group_by: &str) -> Result<Outcome, BoxError> {
    let engine = WorkflowEngine::new();
    register_handlers(&engine);
    let result = engine.execute_workflow(&workflow(source, group_by)).await?;
    let summary = Summary::deserialize(task_output(&result, "process_task")?)?;
    Ok(Outcome { result, summary })
}

/// One order line of the sales file; `fetch` returns a list of them.
#[derive(Serialize, Deserialize)]
struct Order {
    region: String,
    product: String,
    units: u32,
    unit_price_cents: u64,
}

#[derive(Deserialize)]
struct FetchConfig {
    source: String,
}

/// The header line the file starts with.
const HEADER: &str = "order_id,region,product,units,unit_price";

/// Reads the file: the header line [`HEADER`], then one order per line (blank lines are
/// passed over). A line that does not fit, the header included, fails the task (for
/// good) with its line number; a file that cannot be read fails this attempt, with the
/// reason.
fn fetch(ctx: TaskContext) -> anyhow::Result<Vec<Order>> {
    let config: FetchConfig = ctx.config_as()?;
    let text = std::fs::read_to_string(&config.source)
        .with_context(|| format!("cannot read {}", config.source))?;
    let mut orders = Vec::new();
    for (line, text) in (1..).zip(text.lines()) {
        let bad = || TaskError::permanent(format!("{} line {line}: `{text}`", config.source));
        match line {
            1 if text.trim() != HEADER => return Err(bad().into()),
            1 => continue,
            _ if text.trim().is_empty() => continue,
            _ => {}
        }
        let [_id, region, product, units, price] = text
            .split(',')
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| bad())?;
        // A price in cents a u64 holds: not negative, not NaN, not past about 1.8e17.
        let cents = price
            .parse::<f64>()
            .ok()
            .map(|price| (price * 100.0).round())
            .filter(|cents| (0.0..1.8e19).contains(cents))
            .ok_or_else(bad)?;
        orders.push(Order {
            region: region.to_owned(),
            product: product.to_owned(),
            units: units.parse().map_err(|_| bad())?,
            unit_price_cents: cents as u64,
        });
    }
    Ok(orders)
}

/// Totals of a group of orders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Totals {
    pub(crate) orders: u32,
    pub(crate) units: u32,
    pub(crate) revenue_cents: u64,
}

/// What `process` returns: totals per group and overall.
#[derive(Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) group_by: String,
    pub(crate) groups: BTreeMap<String, Totals>,
    pub(crate) total: Totals,
}

#[derive(Deserialize)]
struct ProcessConfig {
    method: String,
    group_by: String,
}

fn process(ctx: &TaskContext) -> Result<Summary, TaskError> {
    let config: ProcessConfig = ctx.config_as()?;
    if config.method != "aggregation" {
        let method = config.method;
        return Err(TaskError::permanent(format!("unknown method `{method}`")));
    }
    let key: fn(&Order) -> &str = match config.group_by.as_str() {
        "region" => |order| &order.region,
        "product" => |order| &order.product,
        other => return Err(TaskError::permanent(format!("cannot group by `{other}`"))),
    };
    let orders: Vec<Order> = ctx.input("fetch_task")?;
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    let mut total = Totals::default();
    let too_large = || TaskError::permanent("the totals are too large to count");
    for order in &orders {
        let revenue = (u64::from(order.units))
            .checked_mul(order.unit_price_cents)
            .ok_or_else(too_large)?;
        for totals in [groups.entry(key(order).to_owned()).or_default(), &mut total] {
            totals.orders = totals.orders.checked_add(1).ok_or_else(too_large)?;
            totals.units = totals
                .units
                .checked_add(order.units)
                .ok_or_else(too_large)?;
            totals.revenue_cents = (totals.revenue_cents)
                .checked_add(revenue)
                .ok_or_else(too_large)?;
        }
    }
    Ok(Summary {
        group_by: config.group_by,
        groups,
        total,
    })
}
