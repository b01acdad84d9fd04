//! `orch report`: one self-contained HTML page about a run (inline CSS, SVG and a little
//! script; nothing fetched from the network): the DAG coloured by status, the timeline
//! with the critical path, the metrics and every task's record.

use std::fmt::Write as _;
use std::path::Path;

use orch::core::{RunMetrics, TaskStatus};

use crate::result_file::RunFile;
use crate::svg::{self, escape};
use crate::{display, gantt};

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
.status { padding: 2px 8px; border-radius: 4px; font-size: 14px; }
.status.completed { background: #d4f4dd; } .status.failed { background: #f9d6d5; }
.status.cancelled { background: #fbe8c8; }
.scroll { overflow: auto; border: 1px solid #ddd; padding: 6px; max-height: 70vh; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.hl rect, rect.hl { stroke: #000 !important; stroke-width: 3 !important; }
tr.hl { background: #fff7c2; }
"#;

/// Highlights one task everywhere it appears while the pointer is over any of its marks,
/// and notes on the page how many bars it drew (a check that the script ran).
const SCRIPT: &str = r#"
(function () {
  var marks = document.querySelectorAll('[data-task]');
  function mark(task, on) {
    marks.forEach(function (m) {
      if (m.getAttribute('data-task') === task) { m.classList.toggle('hl', on); }
    });
  }
  marks.forEach(function (m) {
    var task = m.getAttribute('data-task');
    m.addEventListener('mouseenter', function () { mark(task, true); });
    m.addEventListener('mouseleave', function () { mark(task, false); });
  });
  document.body.setAttribute('data-rendered-bars', String(document.querySelectorAll('svg.gantt rect.bar').length));
})();
"#;

/// The report of `run` (read from `source`) as HTML.
pub(crate) fn html(run: &RunFile, source: &Path) -> Result<String, String> {
    let dag = run.dag(source)?;
    let result = &run.result;
    let metrics = run.metrics();
    let timeline = gantt::gantt(run);
    let title = if result.name.is_empty() {
        &result.workflow_id
    } else {
        &result.name
    };
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>orch run: {}</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
    let _ = write!(
        page,
        "<h1>{} <span class=\"status {status}\">{status}</span></h1><p>Workflow <code>{}</code>, started {}, {:.3}s, up to {} tasks at once.</p>",
        escape(title),
        escape(&result.workflow_id),
        crate::times::rfc3339(result.start_time, 0),
        result.total_duration().as_secs_f64(),
        result.max_concurrent,
        status = result.status,
    );
    let _ = write!(
        page,
        "<h2>Graph</h2><div class=\"scroll\">{}</div>",
        svg::dag(&dag)
    );
    let _ = write!(
        page,
        "<h2>Timeline</h2><p>One row per task, from its start to its end; ★ and a dark outline mark the critical path ({}).</p><div class=\"scroll\">{}</div>",
        escape(&path_text(&metrics)),
        svg::gantt(&timeline)
    );
    page.push_str("<h2>Metrics</h2>");
    page.push_str(&metrics_table(&metrics, run));
    page.push_str("<h2>Tasks</h2><table id=\"tasks\"><tr><th>task</th><th>type</th><th>status</th><th>attempts</th><th>duration</th><th>error</th></tr>");
    // Each task, then the instances of a map task (`task[0]`, ...), each with its record.
    // Only a map task has instances: `a[0]` may be a task of its own when `a` is not one.
    for node in &dag.nodes {
        let instances = node.map.then(|| {
            (0..).map_while(|i| {
                let id = orch::core::MapSpec::instance_id(&node.id, i);
                result.task(&id).map(|record| (id.to_string(), record))
            })
        });
        let own = result
            .task(&node.id)
            .map(|record| (node.id.clone(), record));
        for (id, record) in own.into_iter().chain(instances.into_iter().flatten()) {
            let _ = write!(
                page,
                "<tr data-task=\"{id}\"><td>{id}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                escape(&node.task_type),
                record.status,
                record.attempts,
                record
                    .duration()
                    .map_or(String::new(), |d| format!("{:.3}s", d.as_secs_f64())),
                escape(record.error.as_deref().unwrap_or_default()),
                id = escape(&id),
            );
        }
    }
    let _ = writeln!(page, "</table><script>{SCRIPT}</script></body></html>");
    Ok(page)
}

fn path_text(metrics: &RunMetrics) -> String {
    if metrics.critical_path.is_empty() {
        return "none".to_owned();
    }
    let ids: Vec<&str> = metrics.critical_path.iter().map(|id| id.as_str()).collect();
    format!(
        "{}, {:.3}s",
        ids.join(" → "),
        metrics.critical_path_duration
    )
}

/// The run's figures. Its tasks are counted apart from its map instances, as in the
/// run's summary, when the file holds the workflow that tells them apart.
fn metrics_table(m: &RunMetrics, run: &RunFile) -> String {
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}s"));
    let (tasks, instances) = match &run.workflow {
        Some(workflow) => display::tasks_and_instances(workflow, &run.result),
        None => (run.result.tasks.iter().collect(), Vec::new()),
    };
    let count = |status| display::count_of(&tasks, status).to_string();
    let mut rows = vec![
        ("total duration", format!("{:.3}s", m.total_duration)),
        ("tasks", tasks.len().to_string()),
        ("completed", count(TaskStatus::Completed)),
        ("failed", count(TaskStatus::Failed)),
        ("skipped", count(TaskStatus::Skipped)),
        ("cancelled", count(TaskStatus::Cancelled)),
    ];
    if !instances.is_empty() {
        let counts = display::status_counts(&instances);
        rows.push(("map instances", format!("{}: {counts}", instances.len())));
    }
    rows.extend([
        ("mean task duration", secs(m.avg_task_duration)),
        ("shortest", secs(m.min_task_duration)),
        ("median (p50)", secs(m.p50_task_duration)),
        ("p95", secs(m.p95_task_duration)),
        ("p99", secs(m.p99_task_duration)),
        ("longest", secs(m.max_task_duration)),
        ("critical path", secs(Some(m.critical_path_duration))),
        (
            "parallel efficiency",
            m.parallel_efficiency
                .map_or("-".to_owned(), |e| format!("{:.1} %", e * 100.0)),
        ),
    ]);
    let mut table = String::from("<table id=\"metrics\">");
    for (name, value) in rows {
        let _ = write!(
            table,
            "<tr><th>{name}</th><td class=\"num\">{}</td></tr>",
            escape(&value)
        );
    }
    table.push_str("</table>");
    table
}
