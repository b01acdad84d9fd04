//! The built-in task types (`command`, `sleep`, `echo`) and their configurations, checked
//! with every problem named, before anything runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::suggest;

/// The task types `orch run` knows.
pub(crate) const TYPES: [&str; 3] = ["command", "sleep", "echo"];

/// The default limit on a command's captured standard output: 1 MiB.
pub(crate) const DEFAULT_MAX_OUTPUT: usize = 1 << 20;
/// The highest limit a task may set: 256 MiB.
const MAX_OUTPUT_CEILING: usize = 256 << 20;

/// A task of a built-in type, its configuration checked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Builtin {
    Command(CommandSpec),
    /// Waits this long.
    Sleep(Duration),
    /// Returns this value.
    Echo(Value),
}

/// What a `command` task runs and how.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CommandSpec {
    /// The program (or, with `shell`, `sh`) and its arguments, exactly as written.
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    /// Set on top of the base environment.
    pub(crate) env: BTreeMap<String, String>,
    /// Names of variables passed through from orch's own environment.
    pub(crate) forward_env: Vec<String>,
    /// Pass orch's whole environment instead of the small base set.
    pub(crate) inherit_env: bool,
    /// The working directory; relative to the workflow file's directory.
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) capture: Capture,
    pub(crate) max_output_bytes: usize,
}

/// How a command's standard output becomes the task's result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Capture {
    /// JSON when the whole output parses as JSON and keeps the value of every number in
    /// it, else the text; empty output is null.
    #[default]
    Auto,
    /// The text as it is (less one trailing newline).
    Text,
    /// JSON, or the task fails (numbers past what 64 bits hold are rounded).
    Json,
    /// Any bytes, as a base64 string.
    Base64,
    /// Output is discarded; the result is null.
    None,
}

/// One problem in a task's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConfigProblem {
    /// The configuration key at fault, when one is.
    pub(crate) key: Option<String>,
    pub(crate) message: String,
    pub(crate) suggestion: Option<String>,
}

impl ConfigProblem {
    fn new(key: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            key: key.map(str::to_owned),
            message: message.into(),
            suggestion: None,
        }
    }
}

const COMMAND_KEYS: [&str; 10] = [
    "program",
    "args",
    "shell",
    "script",
    "env",
    "forward_env",
    "inherit_env",
    "cwd",
    "capture",
    "max_output_bytes",
];

/// One argument or variable's value: a string, or a number or boolean written as its
/// text (so that `args: [-n, 5]` and `env: {PORT: 8080}` work as they read).
struct Arg(String);

impl<'de> Deserialize<'de> for Arg {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Arg;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Arg, E> {
                Ok(Arg(v.to_owned()))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Arg, E> {
                Ok(Arg(v.to_string()))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
struct CommandConfig {
    program: Option<Arg>,
    #[serde(default)]
    args: Vec<Arg>,
    #[serde(default)]
    shell: bool,
    script: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, Arg>,
    #[serde(default)]
    forward_env: Vec<String>,
    #[serde(default)]
    inherit_env: bool,
    cwd: Option<PathBuf>,
    #[serde(default)]
    capture: Capture,
    max_output_bytes: Option<usize>,
}

/// `config` read as a command's, with a problem for each key of a type it cannot be:
/// a key that cannot be read is noted and left out, and the rest read again, so that
/// every such key is named at once (each at most once).
fn read_command_config(config: &Value, problems: &mut Vec<ConfigProblem>) -> Option<CommandConfig> {
    let mut config = config.clone();
    loop {
        let error = match serde_path_to_error::deserialize(&config) {
            Ok(parsed) => return Some(parsed),
            Err(error) => error,
        };
        let key = error.path().iter().next().map(|s| s.to_string());
        problems.push(ConfigProblem::new(
            key.as_deref(),
            format!("invalid config at `{}`: {}", error.path(), error.inner()),
        ));
        let removed = key.and_then(|key| config.as_object_mut()?.remove(&key));
        removed.as_ref()?;
    }
}

/// Checks the configuration of a task of a built-in type; `None` for another type.
pub(crate) fn parse(
    task_type: &str,
    config: &Value,
) -> Option<Result<Builtin, Vec<ConfigProblem>>> {
    Some(match task_type {
        "command" => command(config).map(Builtin::Command),
        "sleep" => sleep(config),
        "echo" => known_keys(config, &["message"])
            .map(|()| Builtin::Echo(config.get("message").cloned().unwrap_or(Value::Null))),
        _ => return None,
    })
}

/// Every key of `config` that is not in `known`, each with a suggestion.
fn known_keys(config: &Value, known: &[&str]) -> Result<(), Vec<ConfigProblem>> {
    let Some(map) = config.as_object() else {
        return Err(vec![ConfigProblem::new(None, "config must be an object")]);
    };
    let problems: Vec<ConfigProblem> = map
        .keys()
        .filter(|key| !known.contains(&key.as_str()))
        .map(|key| ConfigProblem {
            key: Some(key.clone()),
            message: format!(
                "unknown config key `{}` (known keys: {})",
                crate::display::one_line(key),
                known.join(", ")
            ),
            suggestion: suggest::closest(key, known.iter().copied()).map(str::to_owned),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn sleep(config: &Value) -> Result<Builtin, Vec<ConfigProblem>> {
    known_keys(config, &["seconds"])?;
    let seconds = config.get("seconds");
    let number = seconds.and_then(Value::as_f64);
    match number.map(Duration::try_from_secs_f64) {
        Some(Ok(duration)) => Ok(Builtin::Sleep(duration)),
        Some(Err(_)) if number.is_some_and(|n| n > 0.0) => Err(vec![ConfigProblem::new(
            Some("seconds"),
            format!(
                "`seconds` is too large: {} is past the longest wait orch can count \
                 (about 5.8e11 years)",
                seconds.map_or(String::new(), Value::to_string),
            ),
        )]),
        _ => Err(vec![ConfigProblem::new(
            Some("seconds"),
            format!(
                "`seconds` must be a non-negative number, not {}",
                seconds.map_or("nothing".into(), Value::to_string)
            ),
        )]),
    }
}

fn command(config: &Value) -> Result<CommandSpec, Vec<ConfigProblem>> {
    let mut problems = known_keys(config, &COMMAND_KEYS).err().unwrap_or_default();
    if !config.is_object() {
        return Err(problems);
    }
    let parsed = match read_command_config(config, &mut problems) {
        Some(parsed) if problems.is_empty() => parsed,
        _ => return Err(problems),
    };
    let (program, args) = match (parsed.shell, parsed.program, parsed.script) {
        (false, Some(program), None) => (program.0, parsed.args.into_iter().map(|a| a.0).collect()),
        (true, None, Some(script)) => {
            // `sh -c SCRIPT orch ARGS...`: the arguments are $1, $2, ... in the script.
            let mut args = vec!["-c".to_owned(), script, "orch".to_owned()];
            args.extend(parsed.args.into_iter().map(|a| a.0));
            ("sh".to_owned(), args)
        }
        (false, _, Some(_)) => {
            problems.push(ConfigProblem::new(
                Some("script"),
                "`script` runs through a shell only with `shell: true`; without a shell, give `program` and `args`",
            ));
            (String::new(), Vec::new())
        }
        (true, Some(_), _) => {
            problems.push(ConfigProblem::new(
                Some("program"),
                "with `shell: true`, write the command line as `script` (not `program`)",
            ));
            (String::new(), Vec::new())
        }
        (false, None, None) => {
            problems.push(ConfigProblem::new(
                Some("program"),
                "a command task needs `program` (or `shell: true` and `script`)",
            ));
            (String::new(), Vec::new())
        }
        (true, None, None) => {
            problems.push(ConfigProblem::new(
                Some("script"),
                "`shell: true` needs `script`, the command line to run",
            ));
            (String::new(), Vec::new())
        }
    };
    if program.is_empty() && problems.is_empty() {
        problems.push(ConfigProblem::new(Some("program"), "`program` is empty"));
    }
    // The operating system takes none of these with a NUL byte in it.
    let nul = |text: &str| text.contains('\0');
    let mut nul_keys = Vec::new();
    if nul(&program) {
        nul_keys.push("program");
    }
    for (i, arg) in args.iter().enumerate() {
        if nul(arg) {
            // With a shell, the arguments are `-c SCRIPT orch ARGS...`.
            nul_keys.push(if parsed.shell && i == 1 {
                "script"
            } else {
                "args"
            });
        }
    }
    if parsed.env.values().any(|v| nul(&v.0)) {
        nul_keys.push("env");
    }
    if parsed
        .cwd
        .as_ref()
        .is_some_and(|c| c.as_os_str().as_encoded_bytes().contains(&0))
    {
        nul_keys.push("cwd");
    }
    nul_keys.dedup();
    for key in nul_keys {
        problems.push(ConfigProblem::new(
            Some(key),
            format!("`{key}` holds a NUL byte (`\\u0000`), which no program can be given"),
        ));
    }
    let names = (parsed.env.keys().map(|name| ("env", name)))
        .chain(parsed.forward_env.iter().map(|name| ("forward_env", name)));
    for (key, name) in names {
        if name.is_empty() || name.contains(['=', '\0']) {
            problems.push(ConfigProblem::new(
                Some(key),
                format!(
                    "`{}` is not a valid environment variable name",
                    crate::display::one_line(name)
                ),
            ));
        }
    }
    let max_output_bytes = parsed.max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT);
    if max_output_bytes > MAX_OUTPUT_CEILING {
        problems.push(ConfigProblem::new(
            Some("max_output_bytes"),
            format!("`max_output_bytes` may be at most {MAX_OUTPUT_CEILING} (256 MiB)"),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(CommandSpec {
        program,
        args,
        env: parsed.env.into_iter().map(|(k, v)| (k, v.0)).collect(),
        forward_env: parsed.forward_env,
        inherit_env: parsed.inherit_env,
        cwd: parsed.cwd,
        capture: parsed.capture,
        max_output_bytes,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(task_type: &str, config: Value) -> Vec<ConfigProblem> {
        match parse(task_type, &config) {
            Some(Err(problems)) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn a_program_runs_as_written_and_a_script_through_sh() {
        let Some(Ok(Builtin::Command(spec))) = parse(
            "command",
            &json!({"program": "ls", "args": ["-l", "$HOME"]}),
        ) else {
            panic!("valid")
        };
        assert_eq!(
            (spec.program.as_str(), spec.args.as_slice()),
            ("ls", &["-l".to_owned(), "$HOME".to_owned()][..])
        );
        assert_eq!(spec.max_output_bytes, DEFAULT_MAX_OUTPUT);
        let Some(Ok(Builtin::Command(spec))) = parse(
            "command",
            &json!({"shell": true, "script": "echo $1", "args": ["x"]}),
        ) else {
            panic!("valid")
        };
        assert_eq!(spec.program, "sh");
        assert_eq!(spec.args, ["-c", "echo $1", "orch", "x"]);
    }

    #[test]
    fn a_program_may_be_written_as_a_number_as_its_arguments_may() {
        let Some(Ok(Builtin::Command(spec))) =
            parse("command", &json!({"program": 2048, "args": [1.5, true]}))
        else {
            panic!("valid")
        };
        assert_eq!(spec.program, "2048");
        assert_eq!(spec.args, ["1.5", "true"]);
    }

    #[test]
    fn unknown_keys_are_named_with_a_suggestion() {
        let found = problems("command", json!({"progam": "ls", "agrs": []}));
        let mut named: Vec<(Option<&str>, Option<&str>)> = found
            .iter()
            .map(|p| (p.key.as_deref(), p.suggestion.as_deref()))
            .collect();
        named.sort();
        assert_eq!(
            named,
            [
                (Some("agrs"), Some("args")),
                (Some("progam"), Some("program"))
            ]
        );
        assert!(
            found[0].message.contains("known keys: program, args"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn wrong_shapes_and_missing_parts_are_problems() {
        let Some(Ok(Builtin::Command(spec))) = parse(
            "command",
            &json!({"program": "head", "args": ["-n", 5, 1.5, true]}),
        ) else {
            panic!("numbers and booleans are arguments too")
        };
        assert_eq!(spec.args, ["-n", "5", "1.5", "true"]);
        let found = problems("command", json!({"program": "ls", "args": [[1]]}));
        assert_eq!(found[0].key.as_deref(), Some("args"));
        assert!(found[0].message.contains("args[0]"), "{}", found[0].message);
        assert_eq!(
            problems("command", json!({}))[0].key.as_deref(),
            Some("program")
        );
        assert_eq!(
            problems("command", json!({"script": "ls"}))[0]
                .key
                .as_deref(),
            Some("script")
        );
        assert_eq!(
            problems("command", json!({"program": "x", "env": {"A=B": "c"}}))[0]
                .key
                .as_deref(),
            Some("env")
        );
        // A bad name in both lists is a problem of each.
        let both = json!({"program": "x", "env": {"A=B": "c"}, "forward_env": ["A=B"]});
        let keys: Vec<_> = (problems("command", both).into_iter())
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, [Some("env".into()), Some("forward_env".into())]);
        assert_eq!(
            problems("sleep", json!({"seconds": -1}))[0].key.as_deref(),
            Some("seconds")
        );
        assert_eq!(
            problems("sleep", json!({}))[0].key.as_deref(),
            Some("seconds")
        );
    }

    #[test]
    fn nul_bytes_and_endless_sleeps_are_named_where_they_are() {
        let keys = |config: Value| -> Vec<Option<String>> {
            problems("command", config)
                .into_iter()
                .map(|p| p.key)
                .collect()
        };
        let key = |k: &str| Some(k.to_owned());
        assert_eq!(keys(json!({"program": "l\0s"})), [key("program")]);
        assert_eq!(
            keys(json!({"program": "ls", "args": ["a", "b\0", "c\0"], "cwd": "d\0"})),
            [key("args"), key("cwd")]
        );
        assert_eq!(
            keys(json!({"shell": true, "script": "echo\0", "args": ["x\0"]})),
            [key("script"), key("args")]
        );
        assert_eq!(
            keys(json!({"program": "ls", "env": {"A": "1\0"}})),
            [key("env")]
        );
        let huge = problems("sleep", json!({"seconds": 1e20}));
        assert!(huge[0].message.contains("too large"), "{}", huge[0].message);
    }

    #[test]
    fn other_types_are_not_built_in() {
        assert_eq!(parse("fetch", &json!({})), None);
        assert_eq!(
            parse("echo", &json!({"message": [1]})),
            Some(Ok(Builtin::Echo(json!([1]))))
        );
    }
}
