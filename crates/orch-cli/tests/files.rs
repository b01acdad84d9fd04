//! `orch validate`, `orch plan` and `orch graph` on workflow files: exit codes, every
//! problem with its place, JSON output, and drawings the real tools accept.

mod common;

use std::process::Command;

use common::{Dir, in_ci, installed, parts, run_in};
use serde_json::{Value, json};

const GOOD: &str = "workflow_id: etl\nname: ETL\ntasks:\n  extract:\n    task_type: command\n    config: { program: 'true' }\n  transform:\n    task_type: echo\n    dependencies: [extract]\n  load:\n    task_type: sleep\n    config: { seconds: 0 }\n    dependencies: [transform, extract]\n  audit:\n    task_type: echo\n";

/// Two problems in one YAML file, one in a JSON file, one unreadable file.
fn broken_files(dir: &Dir) {
    dir.write(
        "bad.yaml",
        "workflow_id: w\ntasks:\n  extract_order:\n    task_type: command\n    config: { program: ls }\n  load:\n    task_type: comand\n    dependencies: [extract_ordr]\n",
    );
    dir.write(
        "bad.json",
        "{\n  \"workflow_id\": \"w\",\n  \"tasks\": {\n    \"a\": {\"task_type\": \"command\", \"config\": {\"progam\": \"ls\"}}\n  }\n}\n",
    );
}

#[test]
fn validate_reports_every_problem_of_every_file_with_its_place() {
    let dir = Dir::new();
    dir.write("good.yaml", GOOD);
    broken_files(&dir);
    let output = run_in(
        &dir,
        &[
            "validate",
            "good.yaml",
            "bad.yaml",
            "bad.json",
            "missing.toml",
        ],
    );
    let (code, stdout, _) = parts(&output);
    assert_eq!(code, Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "good.yaml: ok (4 tasks)",
            "bad.yaml:8:20: task `load` depends on unknown task `extract_ordr`; did you mean `extract_order`?",
            "bad.yaml:7:16: task `load` has unknown task type `comand` (orch runs: command, sleep, echo) (did you mean `command`?)",
            "bad.json:4:46: task `a`: unknown config key `progam` (known keys: program, args, shell, script, env, forward_env, inherit_env, cwd, capture, max_output_bytes) (did you mean `program`?)",
            "missing.toml: cannot read: No such file or directory (os error 2)",
            "4 problem(s) in 3 of 4 file(s)",
        ]
    );
}

/// Every key of a command's config that is wrong is named at once: unknown keys and
/// keys of the wrong type alike (it stopped at the unknown keys, or at the first type).
#[test]
fn validate_names_every_wrong_key_of_a_commands_config() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: {task_type: command, config: {progam: ls, capture: weird, max_output_bytes: -1}}\n  b: {task_type: command, config: {program: [ls], capture: weird, env: 5}}\n",
    );
    let (code, stdout, _) = parts(&run_in(&dir, &["validate", "w.yaml"]));
    assert_eq!(code, Some(1), "{stdout}");
    let named = |task: &str, key: &str| {
        stdout.lines().any(|line| {
            line.contains(&format!("task `{task}`")) && line.contains(&format!("`{key}`"))
        })
    };
    for (task, key) in [
        ("a", "progam"),
        ("a", "capture"),
        ("a", "max_output_bytes"),
        ("b", "program"),
        ("b", "capture"),
        ("b", "env"),
    ] {
        assert!(named(task, key), "{task} {key}: {stdout}");
    }
    assert!(
        stdout.ends_with("6 problem(s) in 1 of 1 file(s)\n"),
        "{stdout}"
    );
}

/// A task id given twice is placed where it is given the second time, in each format
/// and form: the first definition is not the mistake.
#[test]
fn a_repeated_task_id_is_placed_at_its_repeat() {
    let files = [
        (
            "w.yaml",
            "workflow_id: w\ntasks:\n  a: { task_type: echo }\n  b: { task_type: echo }\n  a: { task_type: echo }\n",
            "w.yaml:5:3:",
        ),
        (
            "l.yaml",
            "workflow_id: w\ntasks:\n  - task_id: a\n    task_type: echo\n  - task_id: a\n    task_type: echo\n",
            "l.yaml:5:",
        ),
        (
            "w.toml",
            "workflow_id = \"w\"\n[[tasks]]\ntask_id = \"a\"\ntask_type = \"echo\"\n[[tasks]]\ntask_id = \"a\"\ntask_type = \"echo\"\n",
            "w.toml:6:",
        ),
        (
            "w.json",
            "{\"workflow_id\": \"w\", \"tasks\": [\n {\"task_id\": \"a\", \"task_type\": \"echo\"},\n {\"task_id\": \"a\", \"task_type\": \"echo\"}]}\n",
            "w.json:3:",
        ),
    ];
    first_problem_is_placed(&files, "task id `a` is used by more than one task");
}

/// A dependency is placed in the task's `dependencies`, not at the same word in its
/// configuration written before them.
#[test]
fn a_dependency_is_placed_in_the_dependencies_not_the_config() {
    let files = [
        (
            "w.yaml",
            "workflow_id: w\ntasks:\n  a:\n    task_type: echo\n    config: {message: lint}\n    dependencies: [lint]\n",
            "w.yaml:6:20:",
        ),
        (
            "w.toml",
            "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"echo\"\nconfig = { message = \"lint\" }\ndependencies = [\"lint\"]\n",
            "w.toml:5:17:",
        ),
    ];
    first_problem_is_placed(&files, "unknown task `lint`");
}

/// Each of `files` (name, text, place), validated alone, fails with a first problem
/// that starts with its place and `says` so.
fn first_problem_is_placed(files: &[(&str, &str, &str)], says: &str) {
    let dir = Dir::new();
    for (name, text, place) in files {
        dir.write(name, text);
        let (code, stdout, _) = parts(&run_in(&dir, &["validate", name]));
        assert_eq!(code, Some(1), "{stdout}");
        let line = stdout.lines().next().unwrap_or_default();
        assert!(line.starts_with(place), "{name}: {stdout}");
        assert!(line.contains(says), "{line}");
    }
}

/// A file that starts with a byte-order mark has its problems placed as without it:
/// editors do not count the mark as a column.
#[test]
fn a_byte_order_mark_does_not_move_a_problems_place() {
    let files = [
        (
            "w.yaml",
            "\u{feff}tasks:\n  a:\n    task_type: echo\n    dependencies: [ghost]\nworkflow_id: w\n",
            "w.yaml:4:",
        ),
        (
            "w.toml",
            "\u{feff}workflow_id = \"w\"\n[tasks.a]\ntask_type = \"echo\"\ndependencies = [\"ghost\"]\n",
            "w.toml:4:",
        ),
        (
            "w.json",
            "\u{feff}{\"workflow_id\": \"w\", \"tasks\": {\"a\": {\"task_type\": \"echo\", \"dependencies\": [\"ghost\"]}}}",
            "w.json:1:76:",
        ),
    ];
    first_problem_is_placed(&files, "unknown task `ghost`");
}

/// A built-in task's config that is not an object is one problem, not also the built-in
/// type's own complaint about it.
#[test]
fn a_config_that_is_not_an_object_is_one_problem() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  b:\n    task_type: echo\n    config: null\n",
    );
    let (code, stdout, _) = parts(&run_in(&dir, &["validate", "w.yaml"]));
    assert_eq!(code, Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].contains("must be a JSON object, not null"),
        "{stdout}"
    );
    assert_eq!(lines[1], "1 problem(s) in 1 of 1 file(s)");
}

/// A drawing that cannot take its name (too long for the file system) fails, leaving no
/// temporary file behind: it is quick to draw again, unlike a run's result.
#[test]
fn a_drawing_that_cannot_take_its_name_leaves_nothing_behind() {
    let dir = Dir::new();
    dir.write("w.yaml", GOOD);
    std::fs::create_dir(dir.path().join("out")).expect("a directory");
    let name = format!("out/{}.dot", "x".repeat(300));
    let (code, _, stderr) = parts(&run_in(
        &dir,
        &["graph", "w.yaml", "--format", "dot", "-o", &name],
    ));
    assert_eq!(code, Some(2), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .expect("readable")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn validate_json_names_kinds_places_and_suggestions() {
    let dir = Dir::new();
    dir.write("good.yaml", GOOD);
    broken_files(&dir);
    std::fs::create_dir(dir.join("folder.yaml")).expect("a directory");
    dir.write(
        "syntax.toml",
        "workflow_id = \"w\"\n[tasks.a]\ntask_type = 3\n",
    );
    let output = run_in(
        &dir,
        &[
            "validate",
            "--format",
            "json",
            "good.yaml",
            "bad.yaml",
            "folder.yaml",
            "syntax.toml",
        ],
    );
    let (code, stdout, _) = parts(&output);
    assert_eq!(code, Some(1));
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["valid"], false);
    assert_eq!(report["problems"], 4);
    let files = report["files"].as_array().expect("files");
    assert_eq!(
        files[0],
        json!({"file": "good.yaml", "valid": true, "tasks": 4, "problems": [],
               "unlisted_problems": 0})
    );
    assert_eq!(
        files[1]["problems"][0],
        json!({"kind": "unknown_dependency", "task": "load", "line": 8, "column": 20,
               "message": "task `load` depends on unknown task `extract_ordr`; did you mean `extract_order`?",
               "suggestion": "extract_order"})
    );
    assert_eq!(files[1]["problems"][1]["kind"], "unknown_task_type");
    assert_eq!(files[2]["problems"][0]["kind"], "unreadable");
    assert_eq!(files[2]["tasks"], Value::Null);
    let syntax = &files[3]["problems"][0];
    assert_eq!(
        (syntax["kind"].as_str(), syntax["line"].as_u64()),
        (Some("parse"), Some(3))
    );
}

/// A file with many problems has the first hundred listed and the others counted, in
/// text and in JSON: listing millions, each naming its task, could take far more than
/// the file.
#[test]
fn validate_lists_a_hundred_problems_of_a_file_and_counts_the_rest() {
    let dir = Dir::new();
    let ghosts: Vec<String> = (0..150).map(|i| format!("ghost{i}")).collect();
    let workflow = format!(
        "workflow_id: w\ntasks:\n  a:\n    task_type: echo\n    dependencies: [{}]\n",
        ghosts.join(", ")
    );
    dir.write("w.yaml", &workflow);
    let (code, stdout, _) = parts(&run_in(&dir, &["validate", "w.yaml"]));
    assert_eq!(code, Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 102, "{stdout}");
    assert!(lines[99].ends_with("unknown task `ghost99`"), "{stdout}");
    assert_eq!(lines[100], "w.yaml: and 50 more problem(s), not listed");
    assert_eq!(lines[101], "150 problem(s) in 1 of 1 file(s)");
    let json = run_in(&dir, &["validate", "--format", "json", "w.yaml"]);
    let report: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(report["problems"], 150);
    // A problem the file's reader finds names its task and the key meant, as others do.
    dir.write(
        "typo.yaml",
        "workflow_id: w\ntasks:\n  \"b.1\":\n    task_type: echo\n    dependencis: [a]\n",
    );
    let typo = run_in(&dir, &["validate", "--format", "json", "typo.yaml"]);
    let typo: Value = serde_json::from_slice(&typo.stdout).expect("JSON");
    let typo = &typo["files"][0]["problems"][0];
    assert_eq!(typo["kind"], "parse", "{typo}");
    assert_eq!(typo["task"], "b.1", "{typo}");
    assert_eq!(typo["suggestion"], "dependencies", "{typo}");
    let file = &report["files"][0];
    assert_eq!(file["problems"].as_array().map(Vec::len), Some(100));
    assert_eq!(file["unlisted_problems"], 50);
    // A run refused for its problems says how many it has.
    let (code, _, stderr) = parts(&run_in(&dir, &["run", "w.yaml"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.ends_with(
            "w.yaml: and 50 more problem(s), not listed\nw.yaml: not run: 150 problem(s)\n"
        ),
        "{stderr}"
    );

    // Built-in type problems after the workflow's own share the hundred: 150 unknown
    // dependencies and 60 unknown task types are 210 problems.
    let tasks: String = (0..60)
        .map(|i| format!("  t{i}:\n    task_type: nope\n"))
        .collect();
    dir.write("types.yaml", &format!("{workflow}{tasks}"));
    let (code, stdout, _) = parts(&run_in(&dir, &["validate", "types.yaml"]));
    assert_eq!(code, Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 102, "{stdout}");
    assert_eq!(
        lines[100],
        "types.yaml: and 110 more problem(s), not listed"
    );
}

/// Every problem object has the six documented keys, `null` when not known: `task` and
/// `suggestion` were once left out instead.
#[test]
fn validate_json_problems_have_every_documented_key() {
    let dir = Dir::new();
    dir.write(
        "bell.json",
        r#"{"workflow_id": "w\u0007", "tasks": [{"task_id": "a", "task_type": "echo"}]}"#,
    );
    let (code, stdout, _) = parts(&run_in(
        &dir,
        &["validate", "--format", "json", "bell.json"],
    ));
    assert_eq!(code, Some(1), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    let problems = report["files"][0]["problems"].as_array().expect("problems");
    assert!(!problems.is_empty(), "{stdout}");
    let keys = ["column", "kind", "line", "message", "suggestion", "task"];
    for problem in problems {
        let object = problem.as_object().expect("an object");
        let mut found: Vec<&str> = object.keys().map(String::as_str).collect();
        found.sort_unstable();
        assert_eq!(found, keys, "{problem}");
    }
    assert_eq!(problems[0]["kind"], "control_character", "{stdout}");
    assert_eq!(problems[0]["task"], Value::Null, "{stdout}");
}

/// A line break in a config key or an environment variable's name is escaped: each
/// problem stays on its line, and none passes for another.
#[test]
fn a_line_break_in_a_key_or_a_name_does_not_make_a_problem_of_its_own() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  t: {task_type: echo, config: {\"x\\nw.yaml:1:1: forged\": 1}}\n  c:\n    task_type: command\n    config: {program: ls, env: {\"A\\nw.yaml:2:2: forged=\": b}}\n",
    );
    let (code, stdout, _) = parts(&run_in(&dir, &["validate", "w.yaml"]));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        !stdout
            .lines()
            .any(|line| line.starts_with("w.yaml:1:1: forged")
                || line.starts_with("w.yaml:2:2: forged")),
        "{stdout}"
    );
    assert!(
        stdout.contains(r"unknown config key `x\u{a}w.yaml:1:1: forged`"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r"`A\u{a}w.yaml:2:2: forged=` is not a valid environment variable name"),
        "{stdout}"
    );
}

#[test]
fn problems_show_terminal_escapes_in_the_file_escaped() {
    let dir = Dir::new();
    dir.write(
        "esc.json",
        r#"{"workflow_id": "w", "tasks": [{"task_id": "a", "task_type": "x\u001b]0;owned\u0007"}]}"#,
    );
    let (code, stdout, _) = parts(&run_in(&dir, &["validate", "esc.json"]));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    assert!(
        stdout.contains(r"has unknown task type `x\u{1b}]0;owned\u{7}`"),
        "{stdout}"
    );
    // A valid file's name on its `ok` line too.
    let name = "w\u{1b}]0;owned\u{7}.yaml";
    dir.write(name, "workflow_id: w\ntasks:\n  a: { task_type: echo }\n");
    let (code, stdout, _) = parts(&run_in(&dir, &["validate", name]));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}') && stdout.contains(r"w\u{1b}]0;owned\u{7}.yaml: ok"),
        "{stdout:?}"
    );
    // And on any line that quotes a path (here an empty journal's).
    let journal = "j\u{1b}]0;owned\u{7}";
    std::fs::create_dir(dir.join(journal)).expect("a directory");
    let (code, stdout, _) = parts(&run_in(&dir, &["runs", "list", journal]));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}') && stdout.contains(r"no runs in j\u{1b}]0;owned\u{7}"),
        "{stdout:?}"
    );
}

#[test]
fn aliases_that_expand_past_the_limit_are_a_problem_at_their_place() {
    let dir = Dir::new();
    let nine = |name: &str| vec![format!("*{name}"); 9].join(", ");
    dir.write(
        "bomb.yaml",
        &format!(
            "workflow_id: w\ntasks:\n  t:\n    task_type: echo\n    config:\n      a: &a [x, x, x, x, x, x, x, x, x]\n      b: &b [{}]\n      c: &c [{}]\n      d: &d [{}]\n      e: [{}]\n",
            nine("a"),
            nine("b"),
            nine("c"),
            nine("d")
        ),
    );
    let (code, stdout, _) = parts(&run_in(&dir, &["validate", "bomb.yaml"]));
    assert_eq!(code, Some(1), "{stdout}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("bomb.yaml:"), "{first}");
    assert!(
        first.contains("expand the document past its limit"),
        "{first}"
    );
    let place: Vec<&str> = first.splitn(4, ':').collect();
    assert!(
        place[1].parse::<usize>().is_ok() && place[2].parse::<usize>().is_ok(),
        "no line and column: {first}"
    );
}

#[test]
fn a_problem_of_the_whole_document_names_no_field() {
    let dir = Dir::new();
    dir.write(
        "twice.toml",
        "workflow_id = \"w\"\n[[tasks]]\ntask_id = \"a\"\ntask_type = \"echo\"\ntask_type = \"sleep\"\n",
    );
    dir.write("cut.json", "{\"workflow_id\": \"w\",");
    let output = run_in(&dir, &["validate", "twice.toml", "cut.json"]);
    let (code, stdout, _) = parts(&output);
    assert_eq!(code, Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "twice.toml:5:1: invalid TOML workflow: duplicate key `task_type`",
            "cut.json:1:20: invalid JSON workflow: invalid key: EOF while parsing a value",
            "2 problem(s) in 2 of 2 file(s)",
        ]
    );
}

#[test]
fn validate_refuses_devices_and_endless_pipes_and_names_any_path() {
    use std::os::unix::ffi::OsStrExt;

    let dir = Dir::new();
    let made = Command::new("mkfifo").arg(dir.join("pipe.yaml")).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    // A pipe that never ends: read up to the limit, then refused.
    let mut endless = Command::new("sh")
        .args(["-c", "yes > pipe.yaml"])
        .current_dir(dir.path())
        .spawn()
        .expect("a writer");
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.json")).expect("a symlink");
    // A file name that is not UTF-8.
    let odd = std::ffi::OsStr::from_bytes(b"\xff.json");
    let output = common::output({
        let mut command = common::orch();
        command
            .args(["validate", "--format", "json", "pipe.yaml", "zero.json"])
            .arg(odd)
            .current_dir(dir.path());
        command
    });
    let (code, stdout, stderr) = parts(&output);
    assert_eq!(code, Some(1), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    let files = report["files"].as_array().expect("files");
    let _ = endless.kill();
    let _ = endless.wait();
    let message = |i: usize| {
        files[i]["problems"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(files[0]["problems"][0]["kind"], "unreadable");
    assert!(message(0).contains("larger than 256 MiB"), "{}", message(0));
    assert_eq!(files[1]["problems"][0]["kind"], "unreadable");
    assert!(
        message(1).contains("not a file or a pipe"),
        "{}",
        message(1)
    );
    assert_eq!(files[2]["file"], "\u{fffd}.json");
    assert_eq!(files[2]["problems"][0]["kind"], "unreadable");
}

/// A path with no workflow file's extension that cannot be read (missing, a directory)
/// is said so first: the extension is not the problem to fix.
#[test]
fn an_unreadable_path_without_an_extension_is_said_unreadable() {
    let dir = Dir::new();
    std::fs::create_dir(dir.join("flows")).expect("a directory");
    std::fs::write(dir.join("notes"), "text").expect("written");
    let (code, stdout, stderr) = parts(&run_in(&dir, &["validate", "flows", "build", "notes"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stdout.contains("flows: cannot read: not a file or a pipe"),
        "{stdout}"
    );
    assert!(
        stdout.contains("build: cannot read: No such file or directory"),
        "{stdout}"
    );
    assert!(
        stdout.contains("notes: cannot tell the format: expected extension"),
        "{stdout}"
    );
}

/// A workflow file that is not UTF-8 is refused with the line of its first bad bytes.
#[test]
fn a_workflow_file_that_is_not_utf8_is_refused_naming_the_line() {
    let dir = Dir::new();
    std::fs::write(
        dir.join("w.yaml"),
        b"workflow_id: w\ntasks:\n  a: { task_type: echo, config: { message: \"\xff\" } }\n",
    )
    .expect("written");
    let (code, stdout, stderr) = parts(&run_in(&dir, &["validate", "w.yaml"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stdout.contains("w.yaml: cannot read: not UTF-8 text: line 3 (byte 66)"),
        "{stdout}"
    );
}

#[test]
fn validate_accepts_any_task_type_when_asked() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: fetch }\n",
    );
    assert_eq!(run_in(&dir, &["validate", "w.yaml"]).status.code(), Some(1));
    let output = run_in(&dir, &["validate", "--any-task-type", "w.yaml"]);
    assert_eq!(
        parts(&output),
        (Some(0), "w.yaml: ok (1 tasks)\n".into(), String::new())
    );
}

#[test]
fn structural_problems_are_placed_at_their_task() {
    let dir = Dir::new();
    dir.write(
        "cycle.toml",
        "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"echo\"\ndependencies = [\"b\"]\n[tasks.b]\ntask_type = \"echo\"\ndependencies = [\"a\", \"a\"]\ntimeout = 0\n",
    );
    let (code, stdout, _) = parts(&run_in(&dir, &["validate", "cycle.toml"]));
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "cycle.toml:8:1: task `b`: invalid `timeout`: must be greater than zero",
            "cycle.toml:7:17: task `b` lists dependency `a` more than once",
            "cycle.toml:2:1: dependency cycle: a -> b -> a (each task depends on the next)",
            "3 problem(s) in 1 of 1 file(s)",
        ]
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let dir = Dir::new();
    assert_eq!(run_in(&dir, &["validate"]).status.code(), Some(2));
    assert_eq!(run_in(&dir, &["frobnicate"]).status.code(), Some(2));
    dir.write("w.yaml", GOOD);
    assert_eq!(
        run_in(&dir, &["run", "w.yaml", "--max-concurrent", "0"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn plan_prints_order_and_levels() {
    let dir = Dir::new();
    dir.write("w.yaml", GOOD);
    let (code, stdout, _) = parts(&run_in(&dir, &["plan", "w.yaml"]));
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout,
        "workflow `etl`: 4 tasks in 3 levels (at most 2 side by side)\n\
         order  level  task       type     dependencies\n    \
             1      0  extract    command  -\n    \
             2      1  transform  echo     extract\n    \
             3      2  load       sleep    transform, extract\n    \
             4      0  audit      echo     -\n"
    );
    let (code, stdout, _) = parts(&run_in(&dir, &["plan", "w.yaml", "--format", "json"]));
    assert_eq!(code, Some(0));
    let plan: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        plan["order"],
        json!(["extract", "transform", "load", "audit"])
    );
    assert_eq!(
        plan["levels"],
        json!([["extract", "audit"], ["transform"], ["load"]])
    );
    assert_eq!(
        plan["tasks"][2],
        json!({"id": "load", "name": "", "type": "sleep", "level": 2, "position": 2,
               "dependencies": ["transform", "extract"]})
    );
}

/// The plan's order is the order a run one task at a time starts the tasks in:
/// priorities included, as the engine applies them to the tasks that are ready.
#[test]
fn plan_orders_tasks_as_a_run_starts_them_priorities_included() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        // Each takes a few milliseconds: their start times differ.
        "workflow_id: w\ntasks:\n  \
           a: {task_type: sleep, config: {seconds: 0.002}}\n  \
           b: {task_type: sleep, config: {seconds: 0.002}, priority: 5}\n  \
           c: {task_type: sleep, config: {seconds: 0.002}, priority: 10, dependencies: [a]}\n  \
           d: {task_type: sleep, config: {seconds: 0.002}, dependencies: [b]}\n",
    );
    let (code, stdout, _) = parts(&run_in(&dir, &["plan", "w.yaml", "--format", "json"]));
    assert_eq!(code, Some(0));
    let plan: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(plan["order"], json!(["b", "a", "c", "d"]));
    let run = ["run", "w.yaml", "--max-concurrent", "1", "-o", "r.json"];
    let (code, _, stderr) = parts(&run_in(&dir, &run));
    assert_eq!(code, Some(0), "{stderr}");
    let result = dir.json("r.json");
    let mut started: Vec<(String, &str)> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|id| {
            let time = result["tasks"][id]["start_time"].as_str().expect("started");
            (time.to_owned(), id)
        })
        .collect();
    started.sort();
    let started: Vec<&str> = started.into_iter().map(|(_, id)| id).collect();
    assert_eq!(json!(started), plan["order"]);
}

/// A file name holding a line break shows on one line in `orch validate`'s output, so
/// that it cannot pass for another file's "ok".
#[test]
fn validate_shows_a_file_name_on_one_line() {
    let dir = Dir::new();
    let name = "a.yaml\nother.yaml: ok (3 tasks)\nb.yaml";
    dir.write(name, GOOD);
    let (code, stdout, stderr) = parts(&run_in(&dir, &["validate", name]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "a.yaml\\u{a}other.yaml: ok (3 tasks)\\u{a}b.yaml: ok (4 tasks)\n"
    );
}

/// An output path that is a symbolic link stays one: the file it leads to is written
/// (made when it is not there yet), as a shell's `>` would.
#[test]
fn an_output_through_a_symbolic_link_writes_the_file_it_leads_to() {
    let dir = Dir::new();
    dir.write("w.yaml", GOOD);
    std::fs::create_dir(dir.join("site")).expect("a directory");
    dir.write("site/graph.dot", "old");
    std::os::unix::fs::symlink("site/graph.dot", dir.join("latest.dot")).expect("a link");
    std::os::unix::fs::symlink("site/r.json", dir.join("latest.json")).expect("a link");
    let graph = ["graph", "w.yaml", "--format", "dot", "-o", "latest.dot"];
    let (code, _, stderr) = parts(&run_in(&dir, &graph));
    assert_eq!(code, Some(0), "{stderr}");
    let run = ["run", "w.yaml", "-o", "latest.json"];
    let (code, _, stderr) = parts(&run_in(&dir, &run));
    assert_eq!(code, Some(0), "{stderr}");
    for link in ["latest.dot", "latest.json"] {
        let meta = std::fs::symlink_metadata(dir.join(link)).expect("there");
        assert!(meta.file_type().is_symlink(), "{link} is still a link");
    }
    let dot = std::fs::read_to_string(dir.join("site/graph.dot")).expect("written");
    assert!(dot.starts_with("digraph"), "{dot}");
    assert_eq!(dir.json("site/r.json")["status"], "completed");
    // Links in a loop lead to no file: refused, and left as they are.
    std::os::unix::fs::symlink("loop-b", dir.join("loop-a")).expect("a link");
    std::os::unix::fs::symlink("loop-a", dir.join("loop-b")).expect("a link");
    let graph = ["graph", "w.yaml", "--format", "dot", "-o", "loop-a"];
    let (code, _, stderr) = parts(&run_in(&dir, &graph));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("symbolic links"), "{stderr}");
    for link in ["loop-a", "loop-b"] {
        let meta = std::fs::symlink_metadata(dir.join(link)).expect("there");
        assert!(meta.file_type().is_symlink(), "{link} is still a link");
    }
}

/// A name holding DEL or a C1 control (CSI) reaches the terminal escaped in JSON output,
/// as JSON that reads back to the name.
#[test]
fn json_output_escapes_del_and_c1_controls() {
    let dir = Dir::new();
    let name = "x\u{7f}\u{9b}2J";
    dir.write(
        "w.json",
        &json!({"workflow_id": "w", "tasks": [{"task_id": "a", "name": name, "task_type": "echo"}]})
            .to_string(),
    );
    let (code, stdout, stderr) = parts(&run_in(&dir, &["plan", "w.json", "--format", "json"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stdout.chars().any(|c| c.is_control() && c != '\n'),
        "{stdout:?}"
    );
    let plan: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(plan["tasks"][0]["name"], name);
}

/// Ids wider than the formatter pads (65535 columns) are padded all the same, in the
/// plan and in the journal's listing.
#[test]
fn a_very_long_id_is_printed_in_columns() {
    let dir = Dir::new();
    let id = "t".repeat(70_000);
    dir.write(
        "w.json",
        &json!({"workflow_id": id, "tasks": [{"task_id": id, "task_type": "echo"}]}).to_string(),
    );
    let (code, stdout, stderr) = parts(&run_in(&dir, &["plan", "w.json"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("0  {id}  echo ")),
        "{}",
        stdout.chars().take(200).collect::<String>()
    );
    let (code, _, stderr) = parts(&run_in(&dir, &["run", "w.json", "--journal", "j"]));
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = parts(&run_in(&dir, &["runs", "list", "j"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("{id}  completed")),
        "{}",
        stdout.chars().take(200).collect::<String>()
    );
}

#[test]
fn plan_of_an_invalid_file_fails_with_its_problems() {
    let dir = Dir::new();
    broken_files(&dir);
    let (code, stdout, stderr) = parts(&run_in(&dir, &["plan", "bad.yaml"]));
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    assert!(
        stderr.contains("bad.yaml:8:20: task `load` depends on unknown task `extract_ordr`"),
        "{stderr}"
    );
}

/// Ids that need quoting or escaping in DOT, Mermaid and SVG.
const AWKWARD: &str = "{\"workflow_id\": \"w\", \"tasks\": [\
    {\"task_id\": \"say \\\"hi\\\"\", \"task_type\": \"echo\", \"name\": \"<b>bold</b> & #1\"},\
    {\"task_id\": \"back\\\\slash\", \"task_type\": \"echo\", \"dependencies\": [\"say \\\"hi\\\"\"]},\
    {\"task_id\": \"end\", \"task_type\": \"echo\", \"dependencies\": [\"back\\\\slash\", \"say \\\"hi\\\"\"]}]}";

#[test]
fn dot_output_is_accepted_by_graphviz() {
    if !installed("dot") {
        println!("skipped: Graphviz's `dot` is not installed (apt-get install graphviz)");
        return;
    }
    let dir = Dir::new();
    dir.write("w.json", AWKWARD);
    let (code, stdout, stderr) = parts(&run_in(
        &dir,
        &["graph", "w.json", "--format", "dot", "-o", "w.dot"],
    ));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // `dot` re-emits the graph in its canonical form: the nodes and edges it understood.
    let canonical = Command::new("dot")
        .args(["-Tcanon"])
        .arg(dir.join("w.dot"))
        .output()
        .expect("dot runs");
    assert!(
        canonical.status.success(),
        "{}",
        String::from_utf8_lossy(&canonical.stderr)
    );
    let text = String::from_utf8_lossy(&canonical.stdout);
    assert_eq!(text.matches(" -> ").count(), 3, "{text}");
    assert!(text.contains(r#""say \"hi\"" -> "back\\slash";"#), "{text}");
    let svg = Command::new("dot")
        .args(["-Tsvg"])
        .arg(dir.join("w.dot"))
        .output()
        .expect("dot runs");
    assert!(svg.status.success() && svg.stdout.starts_with(b"<?xml"));
}

#[test]
fn graphviz_is_there_when_ci_says_so() {
    if in_ci() {
        assert!(
            installed("dot"),
            "CI=true and Graphviz's `dot` is missing: .ci/run installs it"
        );
    }
}

#[test]
fn svg_output_is_well_formed_and_escaped() {
    let dir = Dir::new();
    dir.write("w.json", AWKWARD);
    let (code, svg, _) = parts(&run_in(&dir, &["graph", "w.json", "--format", "svg"]));
    assert_eq!(code, Some(0));
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(svg.matches("<g class=\"node none\"").count(), 3);
    assert_eq!(svg.matches("marker-end=\"url(#arrow)\"").count(), 3);
    assert!(svg.contains("&lt;b&gt;bold&lt;/b&gt; &amp; #1"));
    assert!(!svg.contains("<b>"));
}
