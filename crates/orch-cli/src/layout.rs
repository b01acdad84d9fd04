//! A layered drawing of a DAG, left to right: one column per level, tasks in a column
//! ordered to keep edges short (a few barycentre sweeps), and boxes sized to their labels.

use unicode_width::UnicodeWidthStr;

use crate::dag::Dag;
use crate::graph;

/// Where a task's box is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BoxAt {
    pub(crate) x: f64,
    pub(crate) y: f64,
    pub(crate) width: f64,
}

/// A laid-out DAG: one box per task (in the DAG's node order) and the drawing's size.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) boxes: Vec<BoxAt>,
    pub(crate) width: f64,
    pub(crate) height: f64,
}

/// Every box's height.
pub(crate) const BOX_HEIGHT: f64 = 40.0;
const ROW_GAP: f64 = 16.0;
const COLUMN_GAP: f64 = 60.0;
const MARGIN: f64 = 12.0;
/// Width of one column of a label (a terminal's column: a CJK character takes two),
/// roughly, at the drawing's font size.
const CHAR_WIDTH: f64 = 7.0;
/// Labels wider than this many columns are cut with an ellipsis.
pub(crate) const MAX_LABEL: usize = 32;
const SWEEPS: usize = 4;

/// Lays `dag` out.
pub(crate) fn layout(dag: &Dag) -> Layout {
    let mut columns = dag.levels();
    order_columns(dag, &mut columns);
    let n = dag.nodes.len();
    let mut boxes = vec![
        BoxAt {
            x: 0.0,
            y: 0.0,
            width: 0.0
        };
        n
    ];
    let mut x = MARGIN;
    let mut height: f64 = 0.0;
    for column in &columns {
        let width = column
            .iter()
            .map(|&i| box_width(dag, i))
            .fold(80.0, f64::max);
        for (row, &i) in column.iter().enumerate() {
            let y = MARGIN + row as f64 * (BOX_HEIGHT + ROW_GAP);
            boxes[i] = BoxAt { x, y, width };
            height = height.max(y + BOX_HEIGHT + MARGIN);
        }
        x += width + COLUMN_GAP;
    }
    Layout {
        boxes,
        width: (x - COLUMN_GAP + MARGIN).max(2.0 * MARGIN),
        height: height.max(2.0 * MARGIN),
    }
}

fn box_width(dag: &Dag, i: usize) -> f64 {
    let node = &dag.nodes[i];
    let columns = [graph::title(node), &node.task_type]
        .map(|label| cut(label).width())
        .into_iter()
        .max()
        .unwrap_or(0);
    columns as f64 * CHAR_WIDTH + 20.0
}

/// Reorders each column by the mean row of each task's neighbours, sweeping forward
/// (by dependencies) and back (by dependents) a few times; ties keep execution order.
fn order_columns(dag: &Dag, columns: &mut [Vec<usize>]) {
    let n = dag.nodes.len();
    let mut dependents = vec![Vec::new(); n];
    for (from, to) in dag.edges() {
        dependents[from].push(to);
    }
    let mut row = vec![0.0f64; n];
    let place = |columns: &[Vec<usize>], row: &mut Vec<f64>| {
        for column in columns {
            for (r, &i) in column.iter().enumerate() {
                row[i] = r as f64;
            }
        }
    };
    place(columns, &mut row);
    for sweep in 0..SWEEPS {
        let forward = sweep % 2 == 0;
        let indices: Vec<usize> = if forward {
            (1..columns.len()).collect()
        } else {
            (0..columns.len().saturating_sub(1)).rev().collect()
        };
        for c in indices {
            let mut keyed: Vec<(f64, usize, usize)> = columns[c]
                .iter()
                .enumerate()
                .map(|(r, &i)| {
                    let neighbours = if forward {
                        &dag.nodes[i].dependencies
                    } else {
                        &dependents[i]
                    };
                    let key = if neighbours.is_empty() {
                        r as f64
                    } else {
                        neighbours.iter().map(|&j| row[j]).sum::<f64>() / neighbours.len() as f64
                    };
                    (key, r, i)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            columns[c] = keyed.into_iter().map(|(_, _, i)| i).collect();
            for (r, &i) in columns[c].iter().enumerate() {
                row[i] = r as f64;
            }
        }
    }
}

/// `text` cut to [`MAX_LABEL`] columns, with an ellipsis when cut.
pub(crate) fn cut(text: &str) -> String {
    cut_to(text, MAX_LABEL)
}

/// `text` cut to `columns` columns (at least 1), with an ellipsis when cut.
pub(crate) fn cut_to(text: &str, columns: usize) -> String {
    if text.width() <= columns {
        return text.to_owned();
    }
    let mut cut = crate::columns::cut(text, columns.saturating_sub(1)).to_owned();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use orch::core::{Task, Workflow};

    use super::*;

    #[test]
    fn boxes_never_overlap_and_edges_point_right() {
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "t"))
            .task(Task::new("b", "t").depends_on(["a"]))
            .task(Task::new("c", "t").depends_on(["a"]))
            .task(Task::new("d", "t").depends_on(["b", "c"]))
            .task(Task::new("e", "t"));
        let dag = Dag::new(&workflow).expect("valid");
        let layout = layout(&dag);
        for (from, to) in dag.edges() {
            let (a, b) = (layout.boxes[from], layout.boxes[to]);
            assert!(a.x + a.width < b.x, "{from} -> {to}");
        }
        for (i, a) in layout.boxes.iter().enumerate() {
            assert!(a.x + a.width <= layout.width && a.y + BOX_HEIGHT <= layout.height);
            for b in &layout.boxes[i + 1..] {
                let apart = a.x + a.width <= b.x
                    || b.x + b.width <= a.x
                    || a.y + BOX_HEIGHT <= b.y
                    || b.y + BOX_HEIGHT <= a.y;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
    }

    proptest::proptest! {
        /// For random DAGs: no two boxes overlap, every edge points right, every box is in
        /// the drawing, and a column holds one level.
        #[test]
        fn random_dags_lay_out_cleanly(
            deps in proptest::collection::vec(proptest::collection::vec(0usize..1000, 0..4), 1..40),
            names in proptest::collection::vec("[a-z]{1,40}", 40),
        ) {
            let mut workflow = Workflow::new("w", "W");
            for (i, wanted) in deps.iter().enumerate() {
                let mut task = Task::new(format!("t{i}"), "t").name(names[i].clone());
                if i > 0 {
                    let mut chosen: Vec<usize> = wanted.iter().map(|d| d % i).collect();
                    chosen.sort_unstable();
                    chosen.dedup();
                    task = task.depends_on(chosen.into_iter().map(|d| format!("t{d}")));
                }
                workflow.add_task(task);
            }
            let dag = Dag::new(&workflow).expect("valid");
            let layout = layout(&dag);
            for (from, to) in dag.edges() {
                let (a, b) = (layout.boxes[from], layout.boxes[to]);
                proptest::prop_assert!(a.x + a.width < b.x);
            }
            for (i, a) in layout.boxes.iter().enumerate() {
                proptest::prop_assert!(a.x >= 0.0 && a.y >= 0.0);
                proptest::prop_assert!(a.x + a.width <= layout.width && a.y + BOX_HEIGHT <= layout.height);
                for (j, b) in layout.boxes.iter().enumerate().skip(i + 1) {
                    let same_column = a.x == b.x;
                    proptest::prop_assert_eq!(same_column, dag.nodes[i].level == dag.nodes[j].level);
                    proptest::prop_assert!(!same_column || a.y + BOX_HEIGHT <= b.y || b.y + BOX_HEIGHT <= a.y);
                }
            }
        }
    }

    #[test]
    fn long_labels_are_cut() {
        assert_eq!(cut("short"), "short");
        let long = "x".repeat(40);
        assert_eq!(cut(&long).chars().count(), MAX_LABEL);
        assert!(cut(&long).ends_with('…'));
        // By columns: a CJK character takes two.
        let wide = "長".repeat(20);
        assert_eq!(cut(&wide), format!("{}…", "長".repeat(15)));
    }

    /// A box is as wide as its label's columns: wide characters get room for their
    /// glyphs, which take about twice a Latin letter's width.
    #[test]
    fn a_box_holds_a_label_of_wide_characters() {
        let name = "長".repeat(12);
        let workflow = Workflow::new("w", "W").task(Task::new(name.as_str(), "t"));
        let dag = Dag::new(&workflow).expect("valid");
        let layout = layout(&dag);
        assert!(
            layout.boxes[0].width >= 12.0 * 12.0 + 20.0,
            "{:?}",
            layout.boxes[0]
        );
    }
}
