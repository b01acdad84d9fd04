//! The original module README's main example: `fetch_task` → `process_task`.
//!
//! `fetch` reads the orders in a CSV file (`examples/data/sales.csv`) into typed records;
//! `process` aggregates them (orders, units and revenue per region or per product).

use std::collections::BTreeMap;
use std::path::Path;

use orch::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{BoxError, task_output};

/// One order line of the sales file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The order's number.
    pub order_id: u32,
    /// Where it was sold.
    pub region: String,
    /// What was sold.
    pub product: String,
    /// How many.
    pub units: u32,
    /// Price of one unit, in cents.
    pub unit_price_cents: u64,
}

/// What `fetch` returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fetched {
    /// The file read.
    pub source: String,
    /// Its orders.
    pub orders: Vec<Order>,
}

/// Totals of a group of orders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Number of orders.
    pub orders: u32,
    /// Units sold.
    pub units: u32,
    /// Revenue, in cents.
    pub revenue_cents: u64,
}

impl Totals {
    fn add(&mut self, order: &Order) {
        self.orders += 1;
        self.units += order.units;
        self.revenue_cents += u64::from(order.units) * order.unit_price_cents;
    }
}

/// What `process` returns: totals per group and overall.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The column grouped by (`region` or `product`).
    pub group_by: String,
    /// Totals per group, by group name.
    pub groups: BTreeMap<String, Totals>,
    /// Totals over all orders.
    pub total: Totals,
    /// The group with the highest revenue (the first by name on a tie).
    pub top_group: Option<String>,
}

/// What the example computed.
#[derive(Debug)]
pub struct Outcome {
    /// The run's records and metrics.
    pub result: WorkflowResult,
    /// The aggregation `process_task` returned.
    pub summary: Summary,
}

/// The two-task workflow, reading `source` and grouping by `group_by`.
pub fn workflow(source: &Path, group_by: &str) -> Workflow {
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
pub fn register_handlers(engine: &WorkflowEngine) {
    engine.register_handler("fetch", blocking(fetch));
    engine.register_handler("process", |ctx: TaskContext| async move { process(&ctx) });
}

/// Runs the pipeline over `source` (a sales CSV file), grouped by `group_by`.
pub async fn run(source: &Path, group_by: &str) -> Result<Outcome, BoxError> {
    let engine = WorkflowEngine::new();
    register_handlers(&engine);
    let result = engine.execute_workflow(&workflow(source, group_by)).await?;
    let summary = Summary::deserialize(task_output(&result, "process_task")?)?;
    Ok(Outcome { result, summary })
}

#[derive(Deserialize)]
struct FetchConfig {
    source: String,
}

fn fetch(ctx: TaskContext) -> Result<Fetched, TaskError> {
    let config: FetchConfig = ctx.config_as()?;
    let text = std::fs::read_to_string(&config.source)
        .map_err(|e| TaskError::new(format!("cannot read {}: {e}", config.source)))?;
    let table = crate::csv::parse(&text).map_err(|e| TaskError::permanent(e.to_string()))?;
    let column = |name: &str| {
        table.column(name).ok_or_else(|| {
            TaskError::permanent(format!("{} has no `{name}` column", config.source))
        })
    };
    let (id, region, product, units, price) = (
        column("order_id")?,
        column("region")?,
        column("product")?,
        column("units")?,
        column("unit_price")?,
    );
    let mut orders = Vec::with_capacity(table.rows.len());
    for (line, row) in (2..).zip(&table.rows) {
        let bad = |what: &str| TaskError::permanent(format!("line {line}: invalid {what}"));
        let price: f64 = row[price].parse().map_err(|_| bad("unit_price"))?;
        if !(price.is_finite() && price >= 0.0) {
            return Err(bad("unit_price"));
        }
        orders.push(Order {
            order_id: row[id].parse().map_err(|_| bad("order_id"))?,
            region: row[region].clone(),
            product: row[product].clone(),
            units: row[units].parse().map_err(|_| bad("units"))?,
            unit_price_cents: (price * 100.0).round() as u64,
        });
    }
    Ok(Fetched {
        source: config.source,
        orders,
    })
}

#[derive(Deserialize)]
struct ProcessConfig {
    method: String,
    group_by: String,
}

fn process(ctx: &TaskContext) -> Result<Summary, TaskError> {
    let config: ProcessConfig = ctx.config_as()?;
    if config.method != "aggregation" {
        return Err(TaskError::permanent(format!(
            "unknown method `{}`",
            config.method
        )));
    }
    let key: fn(&Order) -> &str = match config.group_by.as_str() {
        "region" => |order| &order.region,
        "product" => |order| &order.product,
        other => return Err(TaskError::permanent(format!("cannot group by `{other}`"))),
    };
    let fetched: Fetched = ctx.input("fetch_task")?;
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    let mut total = Totals::default();
    for order in &fetched.orders {
        groups.entry(key(order).to_owned()).or_default().add(order);
        total.add(order);
    }
    // `max_by_key` keeps the last maximum; walking the names backwards keeps the first.
    let top_group = groups
        .iter()
        .rev()
        .max_by_key(|(_, totals)| totals.revenue_cents)
        .map(|(name, _)| name.clone());
    Ok(Summary {
        group_by: config.group_by,
        groups,
        total,
        top_group,
    })
}
