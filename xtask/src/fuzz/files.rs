//! The `files` target: workflow files in JSON, YAML and TOML through orch-core's loaders.
//!
//! The generator writes workflows in all three formats (map and list form) with awkward
//! but meaningful content: ids with dots, spaces and non-ASCII, long ids, long dependency
//! lists, many tasks, numbers at the edges of their types, durations with many decimals,
//! explicit nulls, each format's own scalars (TOML datetimes, YAML `.nan`), YAML anchors
//! with many aliases, deep nesting. Mutations add byte-level noise on top. The
//! invariants are in [`super::formats`].

use std::path::PathBuf;

use fastrand::Rng;

use super::doc::{self, Node, Syntax};
use super::{Input, Target, Violation, formats, mutate};

pub(crate) struct Files {
    /// Where files that must be read from disk (those that are not UTF-8) are written.
    scratch: PathBuf,
}

impl Files {
    pub(crate) fn new() -> Self {
        Self {
            scratch: std::env::temp_dir().join(format!("orch-fuzz-{}", std::process::id())),
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// The largest file the generator writes.
const MAX_FILE: usize = 2 << 20;

/// Words for mutations, per format.
const JSON_WORDS: &[&str] = &[
    "\"timeout\": null, ",
    "\"retries\": 4294967295, ",
    "\"config\": {\"a\": [[[[]]]]}, ",
    ",",
    ":",
];
const YAML_WORDS: &[&str] = &[
    ".nan",
    ".inf",
    "-.inf",
    "~",
    "&x ",
    "*x",
    "<<: *x",
    "!!binary ",
    "? ",
    "- ",
    ": ",
    "\n  ",
    "0x1F",
    "0o17",
];
const TOML_WORDS: &[&str] = &[
    "nan",
    "+inf",
    "1979-05-27T07:32:00Z",
    "1979-05-27",
    "07:32:00",
    "0x7fffffffffffffff",
    "[[tasks]]\n",
    " = ",
    "'''",
];

impl Target for Files {
    fn generate(&mut self, rng: &mut Rng) -> Input {
        let syntax = *rng
            .choice(&[Syntax::Json, Syntax::Yaml, Syntax::Toml])
            .unwrap_or(&Syntax::Json);
        // Long ids in long dependency lists can make a huge file: draw again.
        let text = std::iter::repeat_with(|| doc::print(&workflow(rng, syntax), syntax))
            .find(|text| text.len() <= MAX_FILE)
            .unwrap_or_default();
        Input::new(text, syntax.ext())
    }

    fn mutate(&mut self, rng: &mut Rng, input: &Input, other: &Input) -> Input {
        let words = match Syntax::from_ext(input.ext) {
            Syntax::Json => JSON_WORDS,
            Syntax::Yaml => YAML_WORDS,
            Syntax::Toml => TOML_WORDS,
        };
        Input::new(
            mutate::bytes_with(rng, &input.bytes, &other.bytes, words),
            input.ext,
        )
    }

    fn check(&mut self, input: &Input) -> Result<(), Violation> {
        formats::check(input, &self.scratch)
    }
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    rng.choice(items).copied().unwrap_or_default()
}

/// A task id: mostly short, sometimes with characters that need care, sometimes long.
fn id(rng: &mut Rng) -> String {
    match rng.u8(..20) {
        0 => pick(
            rng,
            &[
                "load.v2",
                "a b",
                "x*",
                ">",
                "%41",
                "",
                "täsk",
                "数据",
                "🚀",
                "a\"b",
                "tab\there",
                "new\nline",
            ],
        )
        .to_owned(),
        1 if rng.bool() => "a".repeat(rng.usize(1000..10_000)),
        _ => format!(
            "{}{}",
            pick(rng, &["t", "load", "clean", "task_", "x"]),
            rng.u16(..200)
        ),
    }
}

/// A duration in seconds, as a file may write it.
fn duration(rng: &mut Rng, syntax: Syntax) -> Node {
    let raw = match rng.u8(..12) {
        0 => format!(
            "{}.{:09}",
            rng.u64(..10_000_000_000),
            rng.u32(..1_000_000_000)
        ),
        1 => pick(
            rng,
            &[
                "0",
                "-1",
                "1e20",
                "1e-10",
                "18446744073709551616",
                "0.000000001",
            ],
        )
        .to_owned(),
        2 if syntax != Syntax::Toml => "null".to_owned(),
        3 => return Node::Str(pick(rng, &["30s", "1m 30s", "250ms", "1h", "soon"]).to_owned()),
        4 => format!("{}", rng.u32(..100_000)),
        _ => format!("{}.{}", rng.u32(..100), rng.u32(..1000)),
    };
    Node::Raw(raw)
}

/// A scalar only one format (or only some) can write.
fn special(rng: &mut Rng, syntax: Syntax) -> Node {
    let raw = match syntax {
        Syntax::Json => pick(
            rng,
            &[
                "1e999",
                "-0",
                "18446744073709551616",
                "-9223372036854775809",
                "1e-400",
                "5e-324",
                "1.7976931348623157e308",
            ],
        ),
        Syntax::Yaml => pick(
            rng,
            &[
                ".nan",
                ".inf",
                "-.inf",
                "~",
                "0x1F",
                "0o17",
                "+12",
                "1_000",
                "2001-12-14T21:59:43.10-05:00",
                "!!str 12",
                "!custom x",
                "yes",
                "1e999",
            ],
        ),
        Syntax::Toml => pick(
            rng,
            &[
                "nan",
                "+inf",
                "-inf",
                "1979-05-27T07:32:00Z",
                "1979-05-27T00:32:00.999999-07:00",
                "1979-05-27T07:32:00",
                "1979-05-27",
                "07:32:00",
                "0x7FFFFFFFFFFFFFFF",
                "0b101",
                "1e400",
                "9223372036854775808",
            ],
        ),
    };
    Node::Raw(raw.to_owned())
}

/// A configuration value of up to `depth` levels.
fn value(rng: &mut Rng, syntax: Syntax, depth: u32) -> Node {
    let scalar = |rng: &mut Rng| match rng.u8(..10) {
        0 if syntax != Syntax::Toml => Node::Raw("null".into()),
        1 => Node::Raw(pick(rng, &["true", "false"]).into()),
        2 => Node::Raw(rng.i64(..).to_string()),
        3 => Node::Raw(format!(
            "{:?}",
            (rng.f64() - 0.5) * 10f64.powi(rng.i32(-300..300))
        )),
        4 => special(rng, syntax),
        5 => Node::Raw(format!("{}.{}", rng.i32(..), rng.u32(..))),
        _ => Node::Str(id(rng)),
    };
    if depth == 0 || rng.u8(..3) > 0 {
        return scalar(rng);
    }
    let len = rng.usize(..5);
    if rng.bool() {
        Node::Seq((0..len).map(|_| value(rng, syntax, depth - 1)).collect())
    } else {
        Node::Map(
            (0..len)
                .map(|_| (id(rng), value(rng, syntax, depth - 1)))
                .collect(),
        )
    }
}

/// A YAML configuration whose aliases expand to many more values than the file holds.
fn aliases(rng: &mut Rng) -> Node {
    if rng.bool() {
        let items = rng.usize(1..600);
        let copies = rng.usize(1..600);
        let base = Node::Seq(vec![Node::Raw("1".into()); items]);
        Node::Map(vec![
            ("base".into(), Node::Anchor("b".into(), Box::new(base))),
            (
                "copies".into(),
                Node::Seq(vec![Node::Alias("b".into()); copies]),
            ),
        ])
    } else {
        // Nested: each level repeats the one before; at most about half a million values.
        let fan = rng.usize(2..12);
        let levels = (1..8)
            .take_while(|l| fan.pow(*l + 1) <= 500_000)
            .count()
            .max(1);
        let mut entries = vec![(
            "l0".to_owned(),
            Node::Anchor(
                "l0".into(),
                Box::new(Node::Seq(vec![Node::Raw("x".into()); fan])),
            ),
        )];
        for level in 1..=levels {
            let below = Node::Alias(format!("l{}", level - 1));
            let seq = Node::Seq(vec![below; fan]);
            entries.push((
                format!("l{level}"),
                Node::Anchor(format!("l{level}"), Box::new(seq)),
            ));
        }
        Node::Map(entries)
    }
}

/// A value nested `depth` levels deep.
fn nested(depth: usize) -> Node {
    (0..depth).fold(Node::Raw("1".into()), |inner, _| Node::Seq(vec![inner]))
}

/// A workflow document, in map or list form.
fn workflow(rng: &mut Rng, syntax: Syntax) -> Node {
    let count = match rng.u8(..20) {
        0 => rng.usize(100..3000),
        1 => 0,
        _ => rng.usize(1..8),
    };
    let ids: Vec<String> = (0..count).map(|_| id(rng)).collect();
    let list_form = rng.u8(..3) == 0;
    let tasks: Vec<(String, Node)> = ids
        .iter()
        .enumerate()
        .map(|(i, task_id)| {
            (
                task_id.clone(),
                task(rng, syntax, task_id, &ids[..i], list_form),
            )
        })
        .collect();
    let mut top = vec![("workflow_id".to_owned(), Node::Str(id(rng)))];
    if rng.bool() {
        top.push(("name".into(), Node::Str(id(rng))));
    }
    let tasks = if list_form {
        Node::Seq(tasks.into_iter().map(|(_, task)| task).collect())
    } else {
        Node::Map(tasks)
    };
    top.push(("tasks".into(), tasks));
    if rng.u8(..50) == 0 {
        top.push(("unknown".into(), Node::Raw("1".into())));
    }
    Node::Map(top)
}

fn task(rng: &mut Rng, syntax: Syntax, task_id: &str, earlier: &[String], list_form: bool) -> Node {
    let mut fields = Vec::new();
    if list_form || rng.u8(..4) == 0 {
        fields.push(("task_id".to_owned(), Node::Str(task_id.to_owned())));
    }
    if rng.u8(..3) == 0 {
        fields.push(("name".into(), Node::Str(id(rng))));
    }
    fields.push((
        "task_type".into(),
        Node::Str(pick(rng, &["fetch", "process", "t"]).into()),
    ));
    match rng.u8(..30) {
        0 if syntax == Syntax::Yaml => fields.push(("config".into(), aliases(rng))),
        1 => fields.push((
            "config".into(),
            Node::Map(vec![("deep".into(), nested(rng.usize(50..3000)))]),
        )),
        2..=15 => fields.push(("config".into(), value(rng, syntax, 3))),
        _ => {}
    }
    if !earlier.is_empty() && rng.bool() {
        // A long list only in a small workflow, and of short ids: the file stays small.
        let long = earlier.len() < 50 && rng.u8(..20) == 0;
        let short: Vec<&String> = earlier
            .iter()
            .filter(|id| !long || id.len() < 100)
            .collect();
        let many = if long {
            rng.usize(100..20_000)
        } else {
            rng.usize(1..4)
        };
        let dependencies = (0..many)
            .map(|_| match (rng.u8(..20), rng.choice(&short)) {
                (1.., Some(earlier)) => Node::Str((*earlier).clone()),
                _ => Node::Str(id(rng)),
            })
            .collect();
        fields.push(("dependencies".into(), Node::Seq(dependencies)));
    }
    if rng.u8(..4) == 0 {
        let retries = pick(
            rng,
            &["0", "1", "3", "4294967295", "4294967296", "-1", "1.5"],
        );
        fields.push(("retries".into(), Node::Raw(retries.into())));
    }
    if rng.u8(..5) == 0 {
        let mut backoff = Vec::new();
        for key in ["initial", "max"] {
            if rng.bool() {
                backoff.push((key.to_owned(), duration(rng, syntax)));
            }
        }
        if rng.bool() {
            backoff.push((
                "multiplier".into(),
                Node::Raw(pick(rng, &["1", "2.5", "0.5", "1e308"]).into()),
            ));
        }
        if rng.bool() {
            backoff.push((
                "jitter".into(),
                Node::Raw(pick(rng, &["true", "false"]).into()),
            ));
        }
        fields.push(("backoff".into(), Node::Map(backoff)));
    }
    if rng.u8(..3) == 0 {
        fields.push(("timeout".into(), duration(rng, syntax)));
    }
    Node::Map(fields)
}
