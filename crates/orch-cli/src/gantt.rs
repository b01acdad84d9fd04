//! A run's timeline: one row per task from its start to its end, the critical path marked.
//! `orch gantt` draws it in the terminal; the HTML report draws it as SVG.

use std::collections::HashSet;

use orch::core::TaskStatus;

use crate::result_file::RunFile;

/// One task's row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) status: TaskStatus,
    /// Seconds from the run's start to the task's start and end, when it ran in this run.
    pub(crate) span: Option<(f64, f64)>,
    /// Whether the task is on the run's critical path.
    pub(crate) critical: bool,
    /// Whether it ran in an earlier run that this one continues (it started before this
    /// one did): this run's timeline holds no bar of it.
    pub(crate) earlier: bool,
}

impl Row {
    /// What is written after the row's bar: how long the task ran, or what it did.
    fn tail(&self) -> String {
        match self.span {
            Some((start, end)) => format!("{:.3}s", end - start),
            None => self.without_bar(),
        }
    }

    /// What stands in place of a bar for a task with none.
    pub(crate) fn without_bar(&self) -> String {
        match self.earlier {
            true => format!("{} in an earlier run", self.status),
            false => self.status.as_str().to_owned(),
        }
    }
}

/// The rows, tasks that ran first in the order they started, then the others; and the
/// run's length in seconds.
#[derive(Clone, Debug)]
pub(crate) struct Gantt {
    pub(crate) rows: Vec<Row>,
    pub(crate) total: f64,
}

/// The timeline of a run.
pub(crate) fn gantt(run: &RunFile) -> Gantt {
    let result = &run.result;
    let metrics = run.metrics();
    let critical: HashSet<&str> = metrics.critical_path.iter().map(|id| id.as_str()).collect();
    let since = |t: std::time::SystemTime| {
        t.duration_since(result.start_time)
            .unwrap_or_default()
            .as_secs_f64()
    };
    let mut rows: Vec<Row> = result
        .tasks
        .iter()
        .map(|(id, record)| {
            let earlier = record.start_time.is_some_and(|s| s < result.start_time);
            Row {
                // A result file's keys are any text: no control character reaches the
                // terminal.
                id: crate::display::one_line(id.as_str()).into_owned(),
                status: record.status,
                span: (record.start_time.zip(record.end_time))
                    .filter(|_| !earlier)
                    .map(|(s, e)| (since(s), since(e).max(since(s)))),
                critical: critical.contains(id.as_str()),
                earlier,
            }
        })
        .collect();
    // Stable: ties and tasks that never ran keep the workflow's order.
    rows.sort_by(|a, b| match (a.span, b.span) {
        (Some(a), Some(b)) => a.0.total_cmp(&b.0),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let last_end = rows
        .iter()
        .filter_map(|r| r.span.map(|s| s.1))
        .fold(0.0, f64::max);
    Gantt {
        rows,
        total: result.total_duration().as_secs_f64().max(last_end),
    }
}

/// The widest timeline drawn, in columns; `orch gantt --width` refuses more.
pub(crate) const MAX_WIDTH: u16 = 10_000;

/// [`terminal_lines`] as one text.
#[cfg(test)]
pub(crate) fn terminal(gantt: &Gantt, width: usize, colour: bool) -> String {
    terminal_lines(gantt, width, colour).collect()
}

/// The timeline as text `width` columns wide (at most [`MAX_WIDTH`]), a line at a time
/// (each ending in a line break), so that a wide timeline of many tasks is written out
/// as it is drawn, never held whole; with `colour`, bars in ANSI colours by status. A
/// `*` before a name marks the critical path.
pub(crate) fn terminal_lines(
    gantt: &Gantt,
    width: usize,
    colour: bool,
) -> impl Iterator<Item = String> + '_ {
    let width = width.min(usize::from(MAX_WIDTH));
    // "* name |bar| 12.345s": the bar takes what the names and the widest tail leave,
    // and names give up columns (down to 4) before the bar goes under 10.
    let tail_width = (gantt.rows.iter())
        .map(|row| row.tail().chars().count())
        .max()
        .unwrap_or(0);
    let names_room = width.saturating_sub(5 + tail_width + 10).max(4);
    let name_width = crate::columns::width(gantt.rows.iter().map(|r| r.id.as_str()), 4)
        .min(30)
        .min(names_room);
    let bar_width = width.saturating_sub(name_width + 5 + tail_width).max(10);
    let scale = if gantt.total > 0.0 {
        bar_width as f64 / gantt.total
    } else {
        0.0
    };
    // `0s` over the bar's first column, the total ending over its last.
    let axis = format!(
        "{:>w$}0s{:>b$}\n",
        "",
        format!("{:.3}s", gantt.total),
        w = name_width + 3,
        b = bar_width.saturating_sub(2)
    );
    let rows = gantt.rows.iter().map(move |row| {
        let marker = if row.critical { '*' } else { ' ' };
        let name = crate::columns::pad(crate::columns::cut(&row.id, name_width), name_width);
        let bar = match row.span {
            Some((start, end)) => {
                let from = ((start * scale).floor() as usize).min(bar_width - 1);
                let to = ((end * scale).ceil() as usize).clamp(from + 1, bar_width);
                let fill = if row.critical { '█' } else { '▒' };
                let mut bar = " ".repeat(from);
                let body: String = std::iter::repeat_n(fill, to - from).collect();
                bar.push_str(&paint(&body, row.status, colour));
                bar.push_str(&" ".repeat(bar_width - to));
                bar
            }
            None => " ".repeat(bar_width),
        };
        format!("{marker} {name}|{bar}| {}\n", row.tail())
    });
    let key = match gantt.rows.iter().any(|row| row.critical) {
        true => "* on the critical path (█); ▒ off it\n",
        false => {
            "▒ each task's run; no critical path known\n  (no task completed, or the result \
             file holds no workflow)\n"
        }
    };
    std::iter::once(axis)
        .chain(rows)
        .chain(std::iter::once(key.to_owned()))
}

fn paint(text: &str, status: TaskStatus, colour: bool) -> String {
    if !colour {
        return text.to_owned();
    }
    let code = match status {
        TaskStatus::Completed => "32",
        TaskStatus::Failed => "31",
        TaskStatus::Cancelled => "33",
        TaskStatus::Skipped => "90",
        TaskStatus::Running | TaskStatus::Pending => "34",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, span: Option<(f64, f64)>, critical: bool) -> Row {
        Row {
            id: id.into(),
            status: TaskStatus::Completed,
            span,
            critical,
            earlier: false,
        }
    }

    #[test]
    fn bars_sit_where_their_tasks_ran() {
        let gantt = Gantt {
            rows: vec![
                row("a", Some((0.0, 1.0)), true),
                row("b", Some((1.0, 2.0)), false),
                Row {
                    status: TaskStatus::Skipped,
                    ..row("c", None, false)
                },
                Row {
                    earlier: true,
                    ..row("d", None, false)
                },
            ],
            total: 2.0,
        };
        let text = terminal(&gantt, 66, false);
        let lines: Vec<&str> = text.lines().collect();
        // 66 columns: name 4, bar 30, and 27 for the widest text after a bar (d's); the
        // scale's ends over the bar's.
        assert_eq!(
            lines[0],
            format!("{}0s{}2.000s", " ".repeat(7), " ".repeat(22))
        );
        assert_eq!(
            lines[1],
            format!("* a   |{}{}| 1.000s", "█".repeat(15), " ".repeat(15))
        );
        assert_eq!(
            lines[2],
            format!("  b   |{}{}| 1.000s", " ".repeat(15), "▒".repeat(15))
        );
        assert_eq!(lines[3], format!("  c   |{}| skipped", " ".repeat(30)));
        assert_eq!(
            lines[4],
            format!("  d   |{}| completed in an earlier run", " ".repeat(30))
        );
        assert!(lines[..5].iter().all(|l| l.chars().count() <= 66), "{text}");
    }

    #[test]
    fn the_legend_names_the_critical_path_only_when_there_is_one() {
        let legend = |critical| {
            let gantt = Gantt {
                rows: vec![row("a", Some((0.0, 1.0)), critical)],
                total: 1.0,
            };
            let text = terminal(&gantt, 60, false);
            // After the scale and the row.
            text.lines().skip(2).collect::<Vec<_>>().join("\n")
        };
        assert_eq!(legend(true), "* on the critical path (█); ▒ off it");
        assert!(
            legend(false).contains("no critical path known"),
            "{}",
            legend(false)
        );
    }

    #[test]
    fn names_are_cut_to_fit_before_bars_go_under_ten_columns() {
        let gantt = Gantt {
            rows: vec![row(
                "extract_customer_orders_daily1",
                Some((0.0, 1.0)),
                true,
            )],
            total: 1.0,
        };
        // The name is 30 columns wide, the tail 6 (`1.000s`): at 45, the name gives up
        // 6 columns so that the bar keeps 10. (It stayed 30 wide: the row took 51.)
        let text = terminal(&gantt, 45, false);
        let row = text.lines().nth(1).expect("a row");
        assert_eq!(row.chars().count(), 45, "{text}");
        assert_eq!(row.matches('█').count(), 10, "{text}");
        // Names keep 4 columns, bars 10: narrower than that, lines are wider.
        let text = terminal(&gantt, 10, false);
        let row = text.lines().nth(1).expect("a row");
        assert_eq!(row.chars().count(), 2 + 4 + 1 + 10 + 2 + 6, "{text}");
    }

    #[test]
    fn a_width_past_the_widest_is_drawn_at_the_widest() {
        let gantt = Gantt {
            rows: vec![row("a", Some((0.0, 1.0)), true)],
            total: 1.0,
        };
        let widest = terminal(&gantt, usize::from(MAX_WIDTH), false);
        assert_eq!(terminal(&gantt, 70_000, false), widest);
        assert_eq!(terminal(&gantt, usize::MAX, false), widest);
    }

    #[test]
    fn bars_start_in_one_column_whatever_the_width_of_the_names_characters() {
        let gantt = Gantt {
            rows: vec![
                row("読み込み", Some((0.0, 1.0)), false),
                row("load", Some((0.0, 1.0)), false),
                row(&"長".repeat(40), Some((0.0, 1.0)), false),
            ],
            total: 1.0,
        };
        let text = terminal(&gantt, 60, false);
        let bar_column = |line: &str| {
            let before = &line[..line.find('|').expect("a bar")];
            unicode_width::UnicodeWidthStr::width(before)
        };
        let columns: Vec<usize> = text.lines().skip(1).take(3).map(bar_column).collect();
        // Names are 30 columns at most: "* " or "  ", then the name padded to 30.
        assert_eq!(columns, [32, 32, 32], "{text}");
    }
}
