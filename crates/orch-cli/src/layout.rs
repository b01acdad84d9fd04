//! A layered drawing of a DAG, left to right: one column per level, tasks in a column
//! ordered to keep edges short (a few barycentre sweeps), and boxes sized to their labels.
//! An edge that skips levels passes each column between its ends in a lane of its own,
//! between that column's boxes, so that it never runs under a box it does not touch;
//! past [`MOST_LANES`] such crossings in all (a long chain whose every task also depends
//! on one first task has about half the square of its length), edges are drawn straight
//! across, so that the drawing stays of a size to open.

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

/// Where an edge crosses a column between its ends: straight across, at height `y`,
/// from `x` to `x + width`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Lane {
    pub(crate) x: f64,
    pub(crate) y: f64,
    pub(crate) width: f64,
}

/// A laid-out DAG: one box per task (in the DAG's node order), the lanes of each edge
/// (in [`Dag::edges`] order; none for an edge between neighbouring columns) and the
/// drawing's size.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) boxes: Vec<BoxAt>,
    pub(crate) lanes: Vec<Vec<Lane>>,
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
/// The most lanes a drawing has.
pub(crate) const MOST_LANES: usize = 20_000;

/// What takes a place in a column: a task's box, or a lane of a long edge.
#[derive(Clone, Copy, PartialEq)]
enum Item {
    Task(usize),
    /// Edge number `edge` (in [`Dag::edges`] order) crossing the column.
    Lane {
        edge: usize,
    },
}

/// The items of the drawing and how they connect: each long edge becomes a chain through
/// one lane per column it crosses.
struct Items {
    items: Vec<Item>,
    /// Per item, the items it comes from and goes to.
    before: Vec<Vec<usize>>,
    after: Vec<Vec<usize>>,
    columns: Vec<Vec<usize>>,
    /// Per edge, its lanes' items, first column first.
    chains: Vec<Vec<usize>>,
}

impl Items {
    fn of(dag: &Dag) -> Self {
        let n = dag.nodes.len();
        let mut this = Self {
            items: (0..n).map(Item::Task).collect(),
            before: vec![Vec::new(); n],
            after: vec![Vec::new(); n],
            columns: dag.levels(),
            chains: Vec::new(),
        };
        let crossings: usize = (dag.edges())
            .map(|(from, to)| dag.nodes[to].level - dag.nodes[from].level - 1)
            .sum();
        let laned = crossings <= MOST_LANES;
        for (edge, (from, to)) in dag.edges().enumerate() {
            let mut chain = Vec::new();
            let mut last = from;
            let crossed = dag.nodes[from].level + 1..dag.nodes[to].level;
            for level in crossed.filter(|_| laned) {
                let lane = this.items.len();
                this.items.push(Item::Lane { edge });
                this.before.push(vec![last]);
                this.after.push(Vec::new());
                this.after[last].push(lane);
                this.columns[level].push(lane);
                chain.push(lane);
                last = lane;
            }
            this.after[last].push(to);
            this.before[to].push(last);
            this.chains.push(chain);
        }
        this
    }
}

/// Lays `dag` out.
pub(crate) fn layout(dag: &Dag) -> Layout {
    let mut items = Items::of(dag);
    order_columns(&mut items);
    let mut boxes = vec![
        BoxAt {
            x: 0.0,
            y: 0.0,
            width: 0.0
        };
        dag.nodes.len()
    ];
    let mut lanes = vec![None; items.items.len()];
    let mut x = MARGIN;
    let mut height: f64 = 0.0;
    for column in &items.columns {
        let width = (column.iter())
            .filter_map(|&item| match items.items[item] {
                Item::Task(i) => Some(box_width(dag, i)),
                Item::Lane { .. } => None,
            })
            .fold(80.0, f64::max);
        let mut y = MARGIN;
        for &item in column {
            match items.items[item] {
                Item::Task(i) => {
                    boxes[i] = BoxAt { x, y, width };
                    y += BOX_HEIGHT + ROW_GAP;
                }
                Item::Lane { .. } => {
                    lanes[item] = Some(Lane { x, y, width });
                    y += ROW_GAP;
                }
            }
        }
        height = height.max(y - ROW_GAP + MARGIN);
        x += width + COLUMN_GAP;
    }
    let lanes = (items.chains.iter())
        .map(|chain| chain.iter().filter_map(|&item| lanes[item]).collect())
        .collect();
    Layout {
        boxes,
        lanes,
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

/// Reorders each column by the mean row of each item's neighbours, sweeping forward
/// (by what it comes from) and back (by what it goes to) a few times; ties keep the
/// order they had (tasks first, in execution order).
fn order_columns(items: &mut Items) {
    let mut row = vec![0.0f64; items.items.len()];
    for column in &items.columns {
        for (r, &i) in column.iter().enumerate() {
            row[i] = r as f64;
        }
    }
    for sweep in 0..SWEEPS {
        let forward = sweep % 2 == 0;
        let indices: Vec<usize> = if forward {
            (1..items.columns.len()).collect()
        } else {
            (0..items.columns.len().saturating_sub(1)).rev().collect()
        };
        for c in indices {
            let mut keyed: Vec<(f64, usize, usize)> = (items.columns[c].iter())
                .enumerate()
                .map(|(r, &i)| {
                    let neighbours = match forward {
                        true => &items.before[i],
                        false => &items.after[i],
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
            items.columns[c] = keyed.into_iter().map(|(_, _, i)| i).collect();
            for (r, &i) in items.columns[c].iter().enumerate() {
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

/// `e -> g`, `e -> h -> f` and `e -> f`, which skips the level of `g` and `h`.
#[cfg(test)]
pub(crate) fn a_level_skipped() -> Dag {
    use orch::core::{Task, Workflow};
    let workflow = Workflow::new("w", "W")
        .task(Task::new("e", "t"))
        .task(Task::new("g", "t").depends_on(["e"]))
        .task(Task::new("h", "t").depends_on(["e"]))
        .task(Task::new("f", "t").depends_on(["e", "h"]));
    Dag::new(&workflow).expect("valid")
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
            let lanes = lanes_pass_no_box(&dag, &layout);
            proptest::prop_assert!(lanes.is_ok(), "{:?}", lanes);
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

    /// Whether every edge crosses each column between its ends in a lane of its own, in
    /// the drawing and clear of that column's boxes (by half a row gap at least).
    fn lanes_pass_no_box(dag: &Dag, layout: &Layout) -> Result<(), String> {
        let mut taken = Vec::new();
        for ((from, to), lanes) in dag.edges().zip(&layout.lanes) {
            let span = dag.nodes[to].level - dag.nodes[from].level;
            if lanes.len() != span - 1 {
                return Err(format!(
                    "{from} -> {to}: {} lanes over {span} levels",
                    lanes.len()
                ));
            }
            for lane in lanes {
                let inside = lane.x >= 0.0 && lane.x + lane.width <= layout.width;
                if !inside || lane.y < 0.0 || lane.y > layout.height {
                    return Err(format!("{from} -> {to}: {lane:?} outside the drawing"));
                }
                let in_column = layout.boxes.iter().filter(|b| b.x == lane.x);
                if let Some(hit) = in_column.into_iter().find(|b| {
                    lane.y > b.y - ROW_GAP / 2.0 && lane.y < b.y + BOX_HEIGHT + ROW_GAP / 2.0
                }) {
                    return Err(format!("{from} -> {to}: {lane:?} passes {hit:?}"));
                }
                if taken.contains(&(lane.x, lane.y)) {
                    return Err(format!("{from} -> {to}: {lane:?} shared"));
                }
                taken.push((lane.x, lane.y));
            }
        }
        Ok(())
    }

    /// An edge that skips a level goes round the boxes of the column it crosses: here
    /// `e -> f` crosses the column of `g` and `h`, and must not look like `e -> g -> f`.
    #[test]
    fn an_edge_skipping_a_level_passes_between_the_boxes_there() {
        let dag = a_level_skipped();
        let layout = layout(&dag);
        let lanes: Vec<usize> = layout.lanes.iter().map(Vec::len).collect();
        assert_eq!(lanes.iter().sum::<usize>(), 1, "{:?}", layout.lanes);
        assert_eq!(lanes_pass_no_box(&dag, &layout), Ok(()));
    }

    /// A drawing that would need more than [`MOST_LANES`] lanes has none: its edges go
    /// straight across, and its columns hold only boxes.
    #[test]
    fn past_the_most_lanes_edges_go_straight_across() {
        let mut workflow = Workflow::new("w", "W")
            .task(Task::new("t0", "t"))
            .task(Task::new("t1", "t").depends_on(["t0"]));
        for i in 2..300 {
            let deps = [format!("t{}", i - 1), "t0".to_owned()];
            workflow.add_task(Task::new(format!("t{i}"), "t").depends_on(deps));
        }
        let dag = Dag::new(&workflow).expect("valid");
        let layout = layout(&dag);
        assert!(layout.lanes.iter().all(Vec::is_empty));
        assert!(
            layout.height <= 2.0 * MARGIN + BOX_HEIGHT,
            "{}",
            layout.height
        );
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
