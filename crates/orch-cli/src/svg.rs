//! SVG text of a DAG (from [`layout`]) and of a run's timeline, written by
//! hand: standalone files for `orch graph --format svg`, inline drawings for the report.

use std::fmt::Write as _;

use crate::dag::Dag;
use crate::gantt::Gantt;
use crate::graph::{colours, status_class, title};
use crate::layout::{self, BOX_HEIGHT};

/// Text with `&`, `<`, `>`, `"` and `'` escaped, for XML and HTML alike; control
/// characters other than tab and line feed, and U+FFFE and U+FFFF (which XML cannot
/// hold), become spaces.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            '\t' | '\n' => escaped.push(c),
            c if crate::display::is_hidden_control(c) || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {
                escaped.push(' ')
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// The DAG as an SVG document: boxes coloured by status, arrows from each dependency to
/// its dependents. Each task's group has class `node` and its status, and `data-task`.
pub(crate) fn dag(dag: &Dag) -> String {
    let layout = layout::layout(dag);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="sans-serif" font-size="12">"#,
        w = layout.width,
        h = layout.height
    );
    svg.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker></defs>"##);
    svg.push_str(r##"<g class="edges" fill="none" stroke="#999" stroke-width="1.2">"##);
    for ((from, to), lanes) in dag.edges().zip(&layout.lanes) {
        let (a, b) = (layout.boxes[from], layout.boxes[to]);
        let (mut x1, mut y1) = (a.x + a.width, a.y + BOX_HEIGHT / 2.0);
        let _ = write!(svg, r#"<path d="M{x1:.1},{y1:.1}"#);
        // A curve across each gap between columns, a straight line along each lane.
        let ends = lanes
            .iter()
            .map(|lane| (lane.x, lane.y, lane.x + lane.width));
        for (x2, y2, across) in ends.chain([(b.x, b.y + BOX_HEIGHT / 2.0, b.x)]) {
            let bend = (x2 - x1) / 2.0;
            let _ = write!(
                svg,
                " C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
                x1 + bend,
                x2 - bend
            );
            if across > x2 {
                let _ = write!(svg, " L{across:.1},{y2:.1}");
            }
            (x1, y1) = (across, y2);
        }
        svg.push_str(r#"" marker-end="url(#arrow)"/>"#);
    }
    svg.push_str("</g><g class=\"nodes\">");
    for (i, node) in dag.nodes.iter().enumerate() {
        let at = layout.boxes[i];
        let (fill, stroke) = colours(node.status);
        let status = node.status.map_or("not run", |s| s.as_str());
        let _ = write!(
            svg,
            r##"<g class="node {class}" data-task="{id}"><title>{id} ({task_type}): {status}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/><text x="{tx:.1}" y="{ty1:.1}">{label}</text><text x="{tx:.1}" y="{ty2:.1}" fill="#666" font-size="10">{task_type}</text></g>"##,
            class = status_class(node.status),
            id = escape(&node.id),
            task_type = escape(&layout::cut(&node.task_type)),
            x = at.x,
            y = at.y,
            w = at.width,
            h = BOX_HEIGHT,
            tx = at.x + 10.0,
            ty1 = at.y + 17.0,
            ty2 = at.y + 32.0,
            label = escape(&layout::cut(title(node))),
        );
    }
    svg.push_str("</g></svg>\n");
    svg
}

const GANTT_NAME_WIDTH: f64 = 180.0;
/// The columns of a name that fit in [`GANTT_NAME_WIDTH`] at the drawing's font size,
/// with the critical path's star before it.
const GANTT_NAME_COLUMNS: usize = 26;
const GANTT_BAR_WIDTH: f64 = 760.0;
const GANTT_ROW: f64 = 20.0;
const GANTT_TOP: f64 = 28.0;

/// The timeline as SVG: one row per task, a bar (class `bar`, with the status and, on the
/// critical path, `critical`) from its start to its end; tasks that did not run show
/// their status instead of a bar.
pub(crate) fn gantt(gantt: &Gantt) -> String {
    let height = GANTT_TOP + gantt.rows.len() as f64 * GANTT_ROW + 8.0;
    let width = GANTT_NAME_WIDTH + GANTT_BAR_WIDTH + 90.0;
    let scale = if gantt.total > 0.0 {
        GANTT_BAR_WIDTH / gantt.total
    } else {
        0.0
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="gantt" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    // A run that took no measurable time has one tick, at its start.
    let ticks = if gantt.total > 0.0 { 5 } else { 0 };
    for k in 0..=ticks {
        let t = gantt.total * f64::from(k) / 5.0;
        let x = GANTT_NAME_WIDTH + t * scale;
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#e3e3e3"/><text x="{x:.1}" y="16" text-anchor="middle" fill="#666">{t:.3}s</text>"##,
            top = GANTT_TOP - 6.0,
            bottom = height - 4.0,
        );
    }
    for (r, row) in gantt.rows.iter().enumerate() {
        let y = GANTT_TOP + r as f64 * GANTT_ROW;
        let id = escape(&row.id);
        let name = escape(&layout::cut_to(&row.id, GANTT_NAME_COLUMNS));
        let _ = write!(
            svg,
            r#"<text x="4" y="{:.1}" data-task="{id}">{}{name}</text>"#,
            y + 13.0,
            if row.critical { "★ " } else { "" }
        );
        let Some((start, end)) = row.span else {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" fill="#888" font-style="italic">{}</text>"##,
                GANTT_NAME_WIDTH + 4.0,
                y + 13.0,
                row.without_bar()
            );
            continue;
        };
        let (fill, stroke) = colours(Some(row.status));
        let x = GANTT_NAME_WIDTH + start * scale;
        let w = ((end - start) * scale).max(1.5);
        let (class, outline) = if row.critical {
            (
                " critical",
                r##" stroke="#1a1a1a" stroke-width="2.5""##.to_owned(),
            )
        } else {
            ("", format!(r#" stroke="{stroke}" stroke-width="1""#))
        };
        let _ = write!(
            svg,
            r##"<rect class="bar {status}{class}" data-task="{id}" x="{x:.2}" y="{:.1}" width="{w:.2}" height="14" rx="2" fill="{fill}"{outline}><title>{id}: {status}, {:.3}s from {start:.3}s</title></rect><text x="{:.1}" y="{:.1}" fill="#444">{:.3}s</text>"##,
            y + 3.0,
            end - start,
            x + w + 4.0,
            y + 13.0,
            end - start,
            status = row.status,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bidirectional control in a label becomes a space, as a control character does.
    #[test]
    fn bidirectional_controls_in_labels_become_spaces() {
        assert_eq!(escape("a\u{202E}<b>"), "a &lt;b&gt;");
    }

    /// An edge that skips a level is drawn through its lane, between the boxes of the
    /// column it crosses: across the gap to it, along it, and across to its end.
    #[test]
    fn an_edge_skipping_a_level_is_drawn_along_its_lane() {
        let dag = layout::a_level_skipped();
        let lane = layout::layout(&dag).lanes.concat()[0];
        let svg = super::dag(&dag);
        let along = format!(" L{:.1},{:.1} C", lane.x + lane.width, lane.y);
        let paths: Vec<&str> = svg.split("<path d=\"M").skip(2).collect();
        assert_eq!(paths.len(), 4, "{svg}");
        assert_eq!(
            paths.iter().filter(|p| p.contains(&along)).count(),
            1,
            "{svg}"
        );
        assert_eq!(
            paths.iter().filter(|p| p.contains(" L")).count(),
            1,
            "{svg}"
        );
    }

    /// A name is cut to the columns its column holds, a wide character counting two.
    #[test]
    fn gantt_names_are_cut_to_fit_their_column() {
        let row = |id: String| crate::gantt::Row {
            id,
            status: orch::core::TaskStatus::Completed,
            span: Some((0.0, 1.0)),
            critical: false,
            earlier: false,
        };
        let timeline = crate::gantt::Gantt {
            rows: vec![row("長".repeat(20)), row("x".repeat(40))],
            total: 1.0,
        };
        let svg = gantt(&timeline);
        assert!(
            svg.contains(&format!(">{}…</text>", "長".repeat(12))),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(">{}…</text>", "x".repeat(25))),
            "{svg}"
        );
    }

    /// A run that took no measurable time has one tick on its axis, not six on top of
    /// each other.
    #[test]
    fn a_run_of_no_length_has_one_tick() {
        let row = crate::gantt::Row {
            id: "a".to_owned(),
            status: orch::core::TaskStatus::Completed,
            span: Some((0.0, 0.0)),
            critical: false,
            earlier: false,
        };
        for (total, ticks) in [(0.0, 1), (2.0, 6)] {
            let timeline = crate::gantt::Gantt {
                rows: vec![row.clone()],
                total,
            };
            let svg = gantt(&timeline);
            let on_axis = svg.matches(r#"text-anchor="middle""#).count();
            assert_eq!(on_axis, ticks, "{svg}");
        }
    }

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("bell\u{7}"), "bell ");
        assert_eq!(escape("a\u{FFFF}b\u{FFFE}c\u{FFFD}"), "a b c\u{FFFD}");
    }
}
