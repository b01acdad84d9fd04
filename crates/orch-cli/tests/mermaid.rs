//! `orch graph --format mermaid` keeps to the documented subset of Mermaid's flowchart
//! syntax: a parser for that subset reads the output back, and what it reads is the
//! workflow (labels, edges, status classes).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Dir, parts, run_in};

/// What the subset can say.
#[derive(Debug, Default, PartialEq)]
struct Chart {
    labels: BTreeMap<String, String>,
    edges: BTreeSet<(String, String)>,
    classes: BTreeMap<String, String>,
}

fn node_id(text: &str) -> Result<&str, String> {
    let ok =
        text.len() > 1 && text.starts_with('n') && text[1..].bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(text)
    } else {
        Err(format!("bad node id {text:?}"))
    }
}

/// Decodes a label: `#quot;`, `#35;`, `#37;`, `#lt;`, `#gt;`, `#96;`, `#58;`, `#amp;`
/// and `<br/>`; any other `#`, `%`, `<`, `>`, `"`, `` ` ``, `:` or `&` is outside the
/// subset (a label starting with a backtick is Markdown to Mermaid; a `:` on a line with
/// `style` or `classDef` makes Mermaid drop an escape's `;`; `&` starts an HTML entity).
fn label(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let entity = [
            ("#quot;", '"'),
            ("#35;", '#'),
            ("#37;", '%'),
            ("#lt;", '<'),
            ("#gt;", '>'),
            ("#96;", '`'),
            ("#58;", ':'),
            ("#amp;", '&'),
            ("<br/>", '\n'),
        ]
        .into_iter()
        .find(|(code, _)| rest.starts_with(code));
        if let Some((code, decoded)) = entity {
            out.push(decoded);
            rest = &rest[code.len()..];
        } else if matches!(c, '#' | '%' | '<' | '>' | '"' | '`' | ':' | '&') || c.is_control() {
            return Err(format!("raw {c:?} in label {text:?}"));
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    Ok(out)
}

fn colour(text: &str) -> bool {
    text.len() == 7 && text.starts_with('#') && text[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse(text: &str) -> Result<Chart, String> {
    let mut lines = text.lines();
    if lines.next() != Some("flowchart LR") {
        return Err("the first line must be `flowchart LR`".into());
    }
    let mut chart = Chart::default();
    let mut defined = BTreeSet::new();
    for line in lines {
        let line = line
            .strip_prefix("  ")
            .ok_or(format!("not indented: {line:?}"))?;
        if let Some((from, to)) = line.split_once(" --> ") {
            let (from, to) = (node_id(from)?, node_id(to)?);
            for id in [from, to] {
                if !chart.labels.contains_key(id) {
                    return Err(format!("edge to undeclared node {id}"));
                }
            }
            chart.edges.insert((from.into(), to.into()));
        } else if let Some(rest) = line.strip_prefix("classDef ") {
            let (name, style) = rest.split_once(' ').ok_or("classDef without style")?;
            let (fill, stroke) = style
                .strip_prefix("fill:")
                .and_then(|s| s.split_once(",stroke:"))
                .ok_or(format!("bad style {style:?}"))?;
            if !colour(fill) || !colour(stroke) || !name.chars().all(|c| c.is_ascii_lowercase()) {
                return Err(format!("bad classDef {rest:?}"));
            }
            defined.insert(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("class ") {
            let (ids, name) = rest.split_once(' ').ok_or("class without name")?;
            if !defined.contains(name) {
                return Err(format!("class {name} used before classDef"));
            }
            for id in ids.split(',') {
                chart.classes.insert(node_id(id)?.into(), name.into());
            }
        } else {
            let (id, rest) = line
                .split_once("[\"")
                .ok_or(format!("unknown line {line:?}"))?;
            let inner = rest
                .strip_suffix("\"]")
                .ok_or(format!("unclosed label {line:?}"))?;
            chart.labels.insert(node_id(id)?.into(), label(inner)?);
        }
    }
    Ok(chart)
}

#[test]
fn the_parser_rejects_what_is_outside_the_subset() {
    assert!(parse("graph TD\n").is_err());
    assert!(parse("flowchart LR\n  n0[\"a\"b\"]\n").is_err());
    assert!(parse("flowchart LR\n  n0[\"a\"]\n  n0 --> n1\n").is_err());
    assert!(parse("flowchart LR\n  n0[\"a\"]\n  class n0 done\n").is_err());
    assert!(parse("flowchart LR\n  n0[\"a#b\"]\n").is_err());
    assert!(parse("flowchart LR\n  n0[\"a #quot;b#quot;<br/>t\"]\n").is_ok());
}

#[test]
fn mermaid_output_reads_back_as_the_workflow() {
    let dir = Dir::new();
    dir.write(
        "w.json",
        r##"{"workflow_id": "w", "tasks": [
            {"task_id": "say \"hi\"", "task_type": "echo", "name": "<b>#1</b>"},
            {"task_id": "two", "task_type": "command", "name": "`false` step", "config": {"program": "false"}, "dependencies": ["say \"hi\""]},
            {"task_id": "three", "task_type": "echo", "name": "50% %%{init: {'theme':'dark'}}%%", "dependencies": ["two", "say \"hi\""]}]}"##,
    );
    let (code, stdout, _) = parts(&run_in(&dir, &["graph", "w.json", "--format", "mermaid"]));
    assert_eq!(code, Some(0));
    let chart = parse(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    let labels: Vec<&str> = chart.labels.values().map(String::as_str).collect();
    assert_eq!(
        labels,
        [
            "<b>#1</b>\necho",
            "`false` step\ncommand",
            "50% %%{init: {'theme':'dark'}}%%\necho"
        ]
    );
    let edges: Vec<(&str, &str)> = chart
        .edges
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(edges, [("n0", "n1"), ("n0", "n2"), ("n1", "n2")]);
    assert!(chart.classes.is_empty());

    // After a run, each task is in the class of its status.
    let (code, _, _) = parts(&run_in(&dir, &["run", "w.json", "--output", "r.json"]));
    assert_eq!(code, Some(1));
    let (code, stdout, _) = parts(&run_in(
        &dir,
        &[
            "graph", "w.json", "--format", "mermaid", "--result", "r.json",
        ],
    ));
    assert_eq!(code, Some(0));
    let chart = parse(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    let classes: Vec<(&str, &str)> = chart
        .classes
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        classes,
        [("n0", "completed"), ("n1", "failed"), ("n2", "skipped")]
    );

    // A run of another workflow is refused; one of another version of this workflow
    // colours the tasks they share, and names those the file no longer has.
    dir.write(
        "other.json",
        r#"{"workflow_id": "other", "tasks": [{"task_id": "two", "task_type": "echo"}]}"#,
    );
    let (code, stdout, stderr) = parts(&run_in(
        &dir,
        &["graph", "other.json", "--result", "r.json"],
    ));
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    assert!(
        stderr.contains("r.json is a run of workflow `w`, not of `other`"),
        "{stderr}"
    );
    dir.write(
        "w2.json",
        r#"{"workflow_id": "w", "tasks": [{"task_id": "two", "task_type": "echo"}]}"#,
    );
    let (code, stdout, stderr) = parts(&run_in(
        &dir,
        &[
            "graph", "w2.json", "--format", "mermaid", "--result", "r.json",
        ],
    ));
    assert_eq!(code, Some(0));
    let chart = parse(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    assert_eq!(chart.classes.get("n0").map(String::as_str), Some("failed"));
    assert!(
        stderr.contains("2 tasks of r.json are not in w2.json: `say \"hi\"`, `three`"),
        "{stderr}"
    );
    // A result file without the definition that ran: its records are compared.
    without_definition(&dir, "r.json", "bare.json");
    let (code, _, stderr) = parts(&run_in(
        &dir,
        &["graph", "w2.json", "--result", "bare.json"],
    ));
    assert_eq!(code, Some(0));
    assert!(
        stderr.contains("2 tasks of bare.json are not in w2.json: `say \"hi\"`, `three`"),
        "{stderr}"
    );
}

/// Writes result file `from` as `to` without the definition that ran (its records then
/// sorted by id).
fn without_definition(dir: &Dir, from: &str, to: &str) {
    let mut run = dir.json(from);
    run.as_object_mut().expect("an object").remove("workflow");
    dir.write(to, &run.to_string());
}

/// A map task's instances in a result file without its definition are not taken for
/// tasks the workflow lacks.
#[test]
fn a_maps_instances_are_not_tasks_the_workflow_lacks() {
    let dir = Dir::new();
    dir.write(
        "m.yaml",
        "workflow_id: m\ntasks:\n  list: { task_type: echo, config: { message: [1, 2] } }\n  each: { task_type: echo, dependencies: [list], map: { over: list } }\n",
    );
    let (code, _, stderr) = parts(&run_in(&dir, &["run", "m.yaml", "--output", "r.json"]));
    assert_eq!(code, Some(0), "{stderr}");
    let run = dir.json("r.json");
    assert!(run["tasks"].get("each[1]").is_some(), "{run}");
    without_definition(&dir, "r.json", "bare.json");
    let (code, _, stderr) = parts(&run_in(&dir, &["graph", "m.yaml", "--result", "bare.json"]));
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
}
