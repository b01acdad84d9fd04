//! A small document model that prints as JSON, YAML or TOML, so one generator makes
//! workflow files in all three formats, including what only one format can say (YAML
//! anchors and aliases, TOML datetimes, `.nan`).

use std::fmt::Write;

/// A document node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Str(String),
    /// A scalar written as it stands (numbers, booleans, null, or a format's own scalars).
    Raw(String),
    /// YAML `&name node`; other formats print just the node.
    Anchor(String, Box<Node>),
    /// YAML `*name`; other formats print a string.
    Alias(String),
}

/// The file formats a document prints as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Syntax {
    Json,
    Yaml,
    Toml,
}

impl Syntax {
    pub(crate) fn ext(self) -> &'static str {
        match self {
            Syntax::Json => "json",
            Syntax::Yaml => "yaml",
            Syntax::Toml => "toml",
        }
    }

    pub(crate) fn from_ext(ext: &str) -> Self {
        match ext {
            "yaml" | "yml" => Syntax::Yaml,
            "toml" => Syntax::Toml,
            _ => Syntax::Json,
        }
    }
}

/// `text` as a double-quoted string, valid in JSON, YAML and TOML alike.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Prints `node` as a whole document in `syntax`.
pub(crate) fn print(node: &Node, syntax: Syntax) -> String {
    let mut out = String::new();
    match syntax {
        Syntax::Json => flow(node, Syntax::Json, &mut out),
        Syntax::Yaml => yaml_block(node, 0, &mut out),
        Syntax::Toml => toml_document(node, &mut out),
    }
    out
}

/// One-line form: JSON, YAML flow style, or a TOML inline value.
fn flow(node: &Node, syntax: Syntax, out: &mut String) {
    match node {
        Node::Map(entries) => {
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quoted(key));
                out.push_str(if syntax == Syntax::Toml { " = " } else { ": " });
                flow(value, syntax, out);
            }
            out.push('}');
        }
        Node::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(item, syntax, out);
            }
            out.push(']');
        }
        Node::Str(text) => out.push_str(&quoted(text)),
        Node::Raw(text) => out.push_str(text),
        Node::Anchor(name, inner) => {
            if syntax == Syntax::Yaml {
                let _ = write!(out, "&{name} ");
            }
            flow(inner, syntax, out);
        }
        Node::Alias(name) if syntax == Syntax::Yaml => {
            let _ = write!(out, "*{name}");
        }
        Node::Alias(name) => out.push_str(&quoted(name)),
    }
}

/// YAML block style for the top levels (maps of maps), flow style below.
fn yaml_block(node: &Node, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    match node {
        Node::Map(entries) if depth < 2 && !entries.is_empty() => {
            for (key, value) in entries {
                let _ = write!(out, "{indent}{}:", quoted(key));
                match value {
                    Node::Map(inner) if depth < 1 && !inner.is_empty() => {
                        out.push('\n');
                        yaml_block(value, depth + 1, out);
                    }
                    Node::Seq(items) if depth < 1 && !items.is_empty() => {
                        out.push('\n');
                        for item in items {
                            let _ = write!(out, "{indent}  - ");
                            flow(item, Syntax::Yaml, out);
                            out.push('\n');
                        }
                    }
                    _ => {
                        out.push(' ');
                        flow(value, Syntax::Yaml, out);
                        out.push('\n');
                    }
                }
            }
        }
        _ => {
            out.push_str(&indent);
            flow(node, Syntax::Yaml, out);
            out.push('\n');
        }
    }
}

/// TOML: scalar keys first, then a table per entry of a map of maps (`[tasks."id"]`), an
/// array of tables for a list of maps (`[[tasks]]`), inline values below that.
fn toml_document(node: &Node, out: &mut String) {
    let Node::Map(entries) = node else {
        flow(node, Syntax::Toml, out);
        out.push('\n');
        return;
    };
    let tables = |value: &Node| match value {
        Node::Map(inner) => {
            !inner.is_empty() && inner.iter().all(|(_, v)| matches!(v, Node::Map(_)))
        }
        Node::Seq(items) => !items.is_empty() && items.iter().all(|v| matches!(v, Node::Map(_))),
        _ => false,
    };
    for (key, value) in entries.iter().filter(|(_, v)| !tables(v)) {
        let _ = write!(out, "{} = ", quoted(key));
        flow(value, Syntax::Toml, out);
        out.push('\n');
    }
    for (key, value) in entries.iter().filter(|(_, v)| tables(v)) {
        let headed: Vec<(String, &Node)> = match value {
            Node::Map(inner) => inner
                .iter()
                .map(|(id, task)| (format!("[{}.{}]", quoted(key), quoted(id)), task))
                .collect(),
            Node::Seq(items) => items
                .iter()
                .map(|task| (format!("[[{}]]", quoted(key)), task))
                .collect(),
            _ => Vec::new(),
        };
        for (header, task) in headed {
            let _ = writeln!(out, "\n{header}");
            if let Node::Map(fields) = task {
                for (field, value) in fields {
                    let _ = write!(out, "{} = ", quoted(field));
                    flow(value, Syntax::Toml, out);
                    out.push('\n');
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Node {
        let task = Node::Map(vec![
            ("task_type".into(), Node::Str("t\"q".into())),
            (
                "config".into(),
                Node::Map(vec![("n".into(), Node::Raw("1".into()))]),
            ),
            (
                "dependencies".into(),
                Node::Seq(vec![Node::Str("b".into())]),
            ),
        ]);
        Node::Map(vec![
            ("workflow_id".into(), Node::Str("w".into())),
            ("tasks".into(), Node::Map(vec![("a".into(), task)])),
        ])
    }

    #[test]
    fn one_document_reads_the_same_in_every_format() {
        let json: serde_json::Value =
            serde_json::from_str(&print(&sample(), Syntax::Json)).expect("JSON");
        let yaml: serde_json::Value =
            serde_yaml_ng::from_str(&print(&sample(), Syntax::Yaml)).expect("YAML");
        let toml: serde_json::Value =
            toml::from_str(&print(&sample(), Syntax::Toml)).expect("TOML");
        assert_eq!(json["tasks"]["a"]["task_type"], "t\"q");
        assert_eq!(json, yaml);
        assert_eq!(json, toml);
    }

    #[test]
    fn anchors_and_aliases_are_yaml_only() {
        let node = Node::Seq(vec![
            Node::Anchor("x".into(), Box::new(Node::Raw("1".into()))),
            Node::Alias("x".into()),
        ]);
        assert_eq!(print(&node, Syntax::Yaml), "[&x 1, *x]\n");
        assert_eq!(print(&node, Syntax::Json), "[1, \"x\"]");
    }
}
