//! `orch graph`: a workflow's DAG as Graphviz DOT, Mermaid or SVG, each task labelled
//! with its name and type and, after a run, coloured by its status.
//!
//! The Mermaid output keeps to a small subset of the flowchart syntax, which the tests
//! parse back: a `flowchart LR` header; one node per line, `nN["label"]` (N the task's
//! position in the file; the label is the name and the type on two lines, joined by
//! `<br/>`, with `"`, `#`, `%`, `<`, `>`, `` ` ``, `:` and `&` as `#quot;`, `#35;`,
//! `#37;`, `#lt;`, `#gt;`, `#96;`, `#58;` and `#amp;`, and any control character, a line
//! break too, as a space; `%` so that no name reads as a `%%{...}%%` directive, `` ` ``
//! so that none starts a Markdown label, `:` because Mermaid drops the last `;` of a line
//! holding `style` or `classDef`, a `:` and a `#` (undoing an escape), `&` so that
//! none reads as an HTML entity); one edge per line, `nA --> nB`; and,
//! with statuses, `classDef STATUS fill:#RRGGBB,stroke:#RRGGBB` and `class nA,nB STATUS`.

use orch::core::TaskStatus;

use crate::dag::{Dag, Node};

/// The drawing's colours for a status (`None`: not run): (fill, stroke).
pub(crate) fn colours(status: Option<TaskStatus>) -> (&'static str, &'static str) {
    match status {
        Some(TaskStatus::Completed) => ("#d4f4dd", "#2e9d4f"),
        Some(TaskStatus::Failed) => ("#f9d6d5", "#c62828"),
        Some(TaskStatus::Skipped) => ("#eeeeee", "#8a8a8a"),
        Some(TaskStatus::Cancelled) => ("#fbe8c8", "#c77700"),
        Some(TaskStatus::Running) => ("#d6e4fa", "#2f6fd0"),
        Some(TaskStatus::Pending) | None => ("#ffffff", "#555555"),
    }
}

/// The name to show for a status class (`none` when not run).
pub(crate) fn status_class(status: Option<TaskStatus>) -> &'static str {
    status.map_or("none", TaskStatus::as_str)
}

/// The label's first line: the name when it differs from the id, else the id.
pub(crate) fn title(node: &Node) -> &str {
    if node.name.is_empty() {
        &node.id
    } else {
        &node.name
    }
}

/// The DAG in Graphviz's DOT language, left to right.
pub(crate) fn dot(dag: &Dag) -> String {
    let mut text = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\", fillcolor=\"#ffffff\"];\n",
        dot_id(&dag.workflow_id)
    );
    for node in &dag.nodes {
        let mut label = title(node).to_owned();
        if !node.name.is_empty() && node.name != node.id {
            label.push_str(&format!("\n({})", node.id));
        }
        label.push_str(&format!("\n{}", node.task_type));
        if let Some(status) = node.status {
            label.push_str(&format!("\n{status}"));
        }
        let (fill, stroke) = colours(node.status);
        text.push_str(&format!(
            "  {} [label={}, fillcolor=\"{fill}\", color=\"{stroke}\"];\n",
            dot_id(&node.id),
            dot_id(&label)
        ));
    }
    for (from, to) in dag.edges() {
        text.push_str(&format!(
            "  {} -> {};\n",
            dot_id(&dag.nodes[from].id),
            dot_id(&dag.nodes[to].id)
        ));
    }
    text.push_str("}\n");
    text
}

/// A DOT quoted string: `"` and `\` escaped, `&` as `&amp;` (Graphviz reads entities
/// in labels), line breaks as `\n`, other control characters as spaces.
fn dot_id(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '&' => quoted.push_str("&amp;"),
            '\n' => quoted.push_str("\\n"),
            c if crate::display::is_hidden_control(c) => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The DAG as a Mermaid flowchart, in the subset described in the module docs.
pub(crate) fn mermaid(dag: &Dag) -> String {
    let mut text = String::from("flowchart LR\n");
    for (i, node) in dag.nodes.iter().enumerate() {
        let mut label = mermaid_text(title(node));
        label.push_str("<br/>");
        label.push_str(&mermaid_text(&node.task_type));
        text.push_str(&format!("  n{i}[\"{label}\"]\n"));
    }
    for (from, to) in dag.edges() {
        text.push_str(&format!("  n{from} --> n{to}\n"));
    }
    for status in crate::display::STATUSES {
        let members: Vec<String> = (0..dag.nodes.len())
            .filter(|&i| dag.nodes[i].status == Some(status))
            .map(|i| format!("n{i}"))
            .collect();
        if members.is_empty() {
            continue;
        }
        let (fill, stroke) = colours(Some(status));
        text.push_str(&format!(
            "  classDef {status} fill:{fill},stroke:{stroke}\n"
        ));
        text.push_str(&format!("  class {} {status}\n", members.join(",")));
    }
    text
}

/// Label text with Mermaid's entity codes for the characters that would end or change it.
fn mermaid_text(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => escaped.push_str("#quot;"),
            '#' => escaped.push_str("#35;"),
            '%' => escaped.push_str("#37;"),
            '<' => escaped.push_str("#lt;"),
            '>' => escaped.push_str("#gt;"),
            '`' => escaped.push_str("#96;"),
            ':' => escaped.push_str("#58;"),
            '&' => escaped.push_str("#amp;"),
            c if crate::display::is_hidden_control(c) => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_strings_escape_quotes_backslashes_and_breaks() {
        assert_eq!(dot_id(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(dot_id("x\ny\tz"), "\"x\\ny z\"");
        assert_eq!(dot_id("R&amp;D"), "\"R&amp;amp;D\"");
    }

    #[test]
    fn mermaid_labels_use_entity_codes() {
        assert_eq!(
            mermaid_text("a \"b\" #1 <x>"),
            "a #quot;b#quot; #35;1 #lt;x#gt;"
        );
        // Mermaid drops the `;` of `#quot;` on a line holding `style`, `:` and `#`.
        assert_eq!(
            mermaid_text("style=\"color:red\" R&amp;D"),
            "style=#quot;color#58;red#quot; R#amp;amp;D"
        );
    }
}
