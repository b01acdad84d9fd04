//! `orch run` end to end: exit codes, the result file, failures skipping dependents,
//! timeouts and Ctrl-C killing whole process groups, and bad input giving clear errors.

mod common;

use std::process::Stdio;

use common::{Dir, alive, orch, parts, pid_in, run_in, start_sleeper, task_error, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// Runs `file` in `dir` with `--output r.json` and lines on stdout.
fn run_file(dir: &Dir, file: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["run", file, "--output", "r.json"];
    args.extend_from_slice(extra);
    parts(&run_in(dir, &args))
}

fn status(result: &Value, task: &str) -> String {
    result["tasks"][task]["status"]
        .as_str()
        .unwrap_or("none")
        .to_owned()
}

fn error(result: &Value, task: &str) -> String {
    task_error(result, task)
}

#[test]
fn a_completed_run_exits_0_and_writes_results_as_json_or_text() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  json: { task_type: command, config: { program: echo, args: ['{"rows": 3}'] } }
  text: { task_type: command, config: { program: echo, args: [hello] } }
  greet: { task_type: echo, config: { message: [1, 2] } }
  nap: { task_type: sleep, config: { seconds: 0.01 }, dependencies: [json, text] }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &["--max-concurrent", "2"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("workflow `w` completed after"), "{stdout}");
    assert!(stdout.ends_with("result written to r.json\n"), "{stdout}");
    let result = dir.json("r.json");
    assert_eq!(result["status"], "completed");
    assert_eq!(result["max_concurrent"], 2);
    assert_eq!(result["tasks"]["json"]["result"], json!({"rows": 3}));
    assert_eq!(result["tasks"]["text"]["result"], "hello");
    assert_eq!(result["tasks"]["greet"]["result"], json!([1, 2]));
    assert_eq!(result["tasks"]["nap"]["result"], Value::Null);
    assert_eq!(result["metrics"]["completed_tasks"], 4);
    assert_eq!(
        result["workflow"]["tasks"]["nap"]["dependencies"],
        json!(["json", "text"])
    );
}

/// Output that JSON would not read back as written (an integer past 64 bits, more
/// digits than a 64-bit float holds) is kept as text under `capture: auto`: it was once
/// read as JSON, `123456789012345678901234567890` becoming `1.2345678901234568e29`.
#[test]
fn output_whose_numbers_json_would_round_is_kept_as_text() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  big: { task_type: command, config: { program: echo, args: ['123456789012345678901234567890'] } }
  inner: { task_type: command, config: { program: echo, args: ['{"id": 18446744073709551616}'] } }
  pi: { task_type: command, config: { program: echo, args: ['3.14159265358979323846'] } }
  exact: { task_type: command, config: { program: echo, args: ['[18446744073709551615, -9223372036854775808, 0.1, 1.50, 1e3, -0]'] } }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(
        result["tasks"]["big"]["result"],
        "123456789012345678901234567890"
    );
    assert_eq!(
        result["tasks"]["inner"]["result"],
        r#"{"id": 18446744073709551616}"#
    );
    assert_eq!(result["tasks"]["pi"]["result"], "3.14159265358979323846");
    assert_eq!(
        result["tasks"]["exact"]["result"],
        json!([
            18446744073709551615_u64,
            -9223372036854775808_i64,
            0.1,
            1.5,
            1000.0,
            -0.0
        ])
    );
}

#[test]
fn a_failing_command_skips_its_dependents_and_the_run_exits_1() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  build: { task_type: command, config: { shell: true, script: 'echo compiling >&2; echo "error: no main" >&2; exit 3' } }
  test: { task_type: echo, dependencies: [build] }
  deploy: { task_type: echo, dependencies: [test] }
  docs: { task_type: echo }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(result["status"], "failed");
    assert_eq!(status(&result, "build"), "failed");
    assert_eq!(
        error(&result, "build"),
        "`sh` exited with status 3; stderr ends: compiling | error: no main"
    );
    assert_eq!(status(&result, "test"), "skipped");
    assert_eq!(status(&result, "deploy"), "skipped");
    assert_eq!(status(&result, "docs"), "completed");
    // Standard error was streamed to the log, each line under the task's id.
    assert!(stderr.contains("task{id=build}: compiling"), "{stderr}");
    assert!(
        stdout.contains("  failed    build: `sh` exited with status 3"),
        "{stdout}"
    );
}

#[test]
fn arguments_reach_the_program_exactly_as_written() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  plain: { task_type: command, config: { program: printf, args: ['%s|', '$HOME', '; rm -rf x', '`id`', "a b"], capture: text } }
  shell: { task_type: command, config: { shell: true, script: 'printf "%s|" "$1" "$#"', args: ['$(id) *'], capture: text } }
  pwd: { task_type: command, config: { program: pwd } }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(
        result["tasks"]["plain"]["result"],
        "$HOME|; rm -rf x|`id`|a b|"
    );
    assert_eq!(result["tasks"]["shell"]["result"], "$(id) *|1|");
    let here = std::fs::canonicalize(dir.path()).expect("canonical");
    assert_eq!(
        result["tasks"]["pwd"]["result"],
        here.to_str().expect("UTF-8 path")
    );
}

/// A command's standard error reaches the logs (its lines, and the retry's error at
/// `-vv`) with its control characters escaped: a clear-screen or a window-title sequence
/// does not reach the terminal.
#[test]
fn a_commands_control_characters_reach_the_logs_escaped() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  noisy: { task_type: command, retries: 1, config: { shell: true, script: 'printf "x\033[2J\033]0;t\007\r\n" >&2; exit 1' } }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &["-vv"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(!stderr.contains(['\u{1b}', '\u{7}', '\r']), "{stderr:?}");
    assert!(stderr.contains("\\u{1b}[2J"), "{stderr}");
}

#[test]
fn secrets_are_forwarded_by_name_and_appear_nowhere() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  use: { task_type: command, config: { shell: true, script: 'echo "${#API_TOKEN} ${NOT_FORWARDED-unset} $ORCH_TASK_ID $ORCH_ATTEMPT $GREETING $PORT"', forward_env: [API_TOKEN], env: { GREETING: hi, PORT: 8080 } } }
  missing: { task_type: command, config: { program: 'true', forward_env: [ORCH_TEST_NEVER_SET] } }
"#,
    );
    let mut command = orch();
    command
        .args(["run", "w.yaml", "--output", "r.json", "-vv"])
        .current_dir(dir.path())
        .env("API_TOKEN", "s3cr3t-value")
        .env("NOT_FORWARDED", "visible")
        .env_remove("ORCH_TEST_NEVER_SET");
    let output = common::output(command);
    let (code, stdout, stderr) = parts(&output);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(result["tasks"]["use"]["result"], "12 unset use 1 hi 8080");
    assert_eq!(status(&result, "missing"), "failed");
    assert_eq!(
        error(&result, "missing"),
        "environment variable `ORCH_TEST_NEVER_SET` (named in forward_env) is not set"
    );
    let written = std::fs::read_to_string(dir.join("r.json")).expect("result");
    for text in [&written, &stdout, &stderr] {
        assert!(!text.contains("s3cr3t"), "the secret leaked: {text}");
    }
}

#[test]
fn a_command_given_orchs_environment_gets_no_stale_task_variables_nor_nats_settings() {
    // As inside a mapped command that runs orch again: the variables of that instance;
    // and orch's NATS credentials, which a command printing its environment would show.
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  t: { task_type: command, config: { shell: true, inherit_env: true, script: 'echo "${ORCH_INPUTS_DIR-unset} ${ORCH_ITEM-unset} ${ORCH_ITEM_INDEX-unset} ${ORCH_ITEM_FILE-unset} ${ORCH_NATS_PASSWORD-unset} $ORCH_TASK_ID $OUTER"' } }
  kept: { task_type: command, config: { shell: true, inherit_env: true, forward_env: [ORCH_ITEM], script: 'echo "$ORCH_ITEM"' } }
"#,
    );
    let mut command = orch();
    command
        .args(["run", "w.yaml", "--output", "r.json"])
        .current_dir(dir.path())
        .env("ORCH_INPUTS_DIR", "/outer/inputs")
        .env("ORCH_ITEM", "outer-item")
        .env("ORCH_ITEM_INDEX", "7")
        .env("ORCH_ITEM_FILE", "/outer/item.json")
        .env("ORCH_TASK_ID", "outer[7]")
        .env("ORCH_NATS_PASSWORD", "hunter2")
        .env("OUTER", "kept");
    let (code, stdout, stderr) = parts(&common::output(command));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(
        result["tasks"]["t"]["result"],
        "unset unset unset unset unset t kept"
    );
    // Named in `forward_env`, a variable is handed on as asked.
    assert_eq!(result["tasks"]["kept"]["result"], "outer-item");
}

#[test]
fn dependency_results_are_private_files_removed_after_the_run() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  fetch: { task_type: echo, config: { message: { rows: 3 } } }
  "odd/id": { task_type: command, config: { program: echo, args: ['"x"'] } }
  use:
    task_type: command
    dependencies: [fetch, "odd/id"]
    config: { shell: true, script: 'cd "$ORCH_INPUTS_DIR" && echo "{\"dir\": \"$PWD\", \"modes\": \"$(stat -c %a . fetch.json odd%2Fid.json | tr "\n" " ")\", \"fetch\": $(cat fetch.json), \"odd\": $(cat odd%2Fid.json)}"' }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let result = dir.json("r.json");
    let seen = &result["tasks"]["use"]["result"];
    assert_eq!(seen["modes"], "700 600 600 ");
    assert_eq!(seen["fetch"], json!({"rows": 3}));
    assert_eq!(seen["odd"], "x");
    let inputs = std::path::Path::new(seen["dir"].as_str().expect("a path"));
    assert!(inputs.is_absolute());
    assert!(!inputs.exists(), "{} outlived the run", inputs.display());
    assert!(!inputs.parent().expect("the run's directory").exists());
}

/// A command's output holding DEL, a C1 control (an 8-bit escape sequence) or a
/// bidirectional control (which reorders what a terminal shows) is written to the result
/// file as JSON escapes, which read back as the same text.
#[test]
fn control_characters_a_command_printed_are_escaped_in_the_result_file() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  noisy: { task_type: command, config: { shell: true, script: 'printf "a\302\2332Jb\177c\342\200\256d"' } }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let bytes = std::fs::read(dir.join("r.json")).expect("the result file");
    let raw = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        !raw(&[0xc2, 0x9b]) && !raw(&[0x7f]) && !raw("\u{202e}".as_bytes()),
        "no raw control"
    );
    assert_eq!(
        dir.json("r.json")["tasks"]["noisy"]["result"],
        "a\u{9b}2Jb\u{7f}c\u{202e}d"
    );
}

/// The run's temporary directory is made only for a command that reads its dependencies'
/// results: with none to be made there (`TMPDIR` is not there), the other tasks run, and
/// that one fails saying why.
#[test]
fn a_run_without_a_temporary_directory_fails_only_the_commands_that_need_one() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  fetch: { task_type: echo, config: { message: 1 } }
  alone: { task_type: command, config: { program: echo, args: ['2'] } }
  use: { task_type: command, dependencies: [fetch], config: { program: echo, args: ['3'] } }
"#,
    );
    let mut command = orch();
    (command.args(["run", "w.yaml", "-o", "r.json"]))
        .current_dir(dir.path())
        .env("TMPDIR", dir.join("not-there"));
    let (code, stdout, stderr) = parts(&common::output(command));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(result["tasks"]["fetch"]["result"], json!(1), "{result:#}");
    assert_eq!(result["tasks"]["alone"]["result"], json!(2), "{result:#}");
    assert_eq!(result["tasks"]["use"]["status"], "failed");
    let error = result["tasks"]["use"]["error"].as_str().expect("an error");
    let named = format!(
        "cannot create a private temporary directory in {}",
        dir.join("not-there").display()
    );
    assert!(error.contains(&named), "{error}");
}

/// A command with dependencies gets its inputs directory even when none of them
/// completed (a clean-up that runs after failures): it holds a file for each one that
/// did, and none for the others.
#[test]
fn a_command_whose_dependencies_did_not_complete_still_gets_its_inputs_directory() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  broken: { task_type: command, config: { program: "false" } }
  cleanup:
    task_type: command
    dependencies: [broken]
    trigger_rule: all_done
    config: { shell: true, script: 'test -d "$ORCH_INPUTS_DIR" && test ! -e "$ORCH_INPUTS_DIR/broken.json" && echo true' }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(
        result["tasks"]["cleanup"]["result"],
        json!(true),
        "{result:#}"
    );
}

/// A map task that failed because an instance failed still gives a task after it (here
/// by `all_done`) a file: the instances' results, `null` where one did not complete.
#[test]
fn a_failed_map_tasks_file_holds_what_its_instances_gave() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  list: { task_type: echo, config: { message: [1, 2] } }
  each:
    task_type: command
    dependencies: [list]
    map: { over: list }
    config: { shell: true, script: 'test "$ORCH_ITEM" = 2 && exit 1; echo "\"ok\""' }
  report:
    task_type: command
    dependencies: [each]
    trigger_rule: all_done
    config: { shell: true, script: 'cat "$ORCH_INPUTS_DIR/each.json"' }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(status(&result, "each"), "failed");
    assert_eq!(
        result["tasks"]["report"]["result"],
        json!(["ok", null]),
        "{result:#}"
    );
}

/// A command's dependency files are removed when it ends, not kept to the end of the run:
/// the instances of a map over a long list each get the whole list.
#[test]
fn a_commands_dependency_files_are_removed_when_it_ends() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  fetch: { task_type: echo, config: { message: 1 } }
  first:
    task_type: command
    dependencies: [fetch]
    config: { shell: true, script: 'echo "\"$ORCH_INPUTS_DIR\""' }
  after:
    task_type: command
    dependencies: [first]
    config: { shell: true, script: 'gone=$(tr -d "\"" < "$ORCH_INPUTS_DIR/first.json"); test -n "$gone" && test ! -e "$gone" && echo true' }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(
        result["tasks"]["after"]["result"],
        json!(true),
        "{result:#}"
    );
}

#[test]
fn each_instance_of_a_mapped_command_gets_its_own_id_element_and_inputs() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  list: { task_type: echo, config: { message: [10, {"k": "v"}, "s"] } }
  other: { task_type: echo, config: { message: "o" } }
  each:
    task_type: command
    dependencies: [list, other]
    map: { over: list }
    config: { shell: true, script: 'echo "{\"id\": \"$ORCH_TASK_ID\", \"index\": $ORCH_ITEM_INDEX, \"item\": $ORCH_ITEM, \"list\": $(test -e "$ORCH_INPUTS_DIR/list.json" && echo true || echo false), \"other\": $(cat "$ORCH_INPUTS_DIR/other.json"), \"dir\": \"$(basename "$ORCH_INPUTS_DIR")\"}"' }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &["--max-concurrent", "3"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let result = dir.json("r.json");
    let items = [json!(10), json!({"k": "v"}), json!("s")];
    for (i, item) in items.iter().enumerate() {
        let seen = &result["tasks"][format!("each[{i}]").as_str()]["result"];
        assert_eq!(seen["id"], format!("each[{i}]"), "{result:#}");
        assert_eq!(seen["index"], json!(i));
        assert_eq!(&seen["item"], item);
        // The element, not the list again: n instances would write it n times.
        assert_eq!(seen["list"], json!(false));
        assert_eq!(seen["other"], json!("o"));
        // Named after the run, the attempt and the instance, and numbered.
        let name = seen["dir"].as_str().expect("a name");
        let (named, number) = name.rsplit_once("%2F").expect("numbered");
        assert!(named.ends_with(&format!("%2F1%2Feach%5B{i}%5D")), "{name}");
        assert!(number.bytes().all(|b| b.is_ascii_digit()), "{name}");
    }
}

#[test]
fn a_large_element_reaches_its_instance_in_a_file_only() {
    let dir = Dir::new();
    let large = "x".repeat(70_000);
    dir.write(
        "w.yaml",
        &format!(
            r#"workflow_id: w
tasks:
  list: {{ task_type: echo, config: {{ message: [small, "{large}"] }} }}
  each:
    task_type: command
    dependencies: [list]
    map: {{ over: list }}
    config: {{ shell: true, script: 'echo "[$(wc -c < "$ORCH_ITEM_FILE"), ${{#ORCH_ITEM}}]"' }}
"#
        ),
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let result = dir.json("r.json");
    // The file holds the JSON and a newline; the variable is there for the small one.
    assert_eq!(result["tasks"]["each[0]"]["result"], json!([8, 7]));
    assert_eq!(result["tasks"]["each[1]"]["result"], json!([70_003, 0]));
}

#[test]
fn a_timeout_kills_the_command_and_what_it_started() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  slow:
    task_type: command
    timeout: 3
    config: { shell: true, script: 'sleep 300 & echo $! > grandchild.pid; echo $$ > child.pid; wait' }
  after: { task_type: echo, dependencies: [slow] }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(status(&result, "slow"), "failed");
    assert_eq!(error(&result, "slow"), "timed out after 3s");
    assert_eq!(status(&result, "after"), "skipped");
    for file in ["child.pid", "grandchild.pid"] {
        let pid = pid_in(&dir.join(file));
        wait_for(&format!("process {pid} ({file}) to end"), || !alive(pid));
    }
}

#[test]
fn what_a_command_leaves_running_ends_with_it() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: command, config: { shell: true, script: 'sleep 300 & echo $! > left.pid' } }\n",
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let pid = pid_in(&dir.join("left.pid"));
    wait_for("the background sleep to end", || !alive(pid));
}

#[test]
fn ctrl_c_stops_every_command_writes_the_result_and_exits_130() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  a: { task_type: command, config: { shell: true, script: 'sleep 300 & echo $! > a-child.pid; echo $$ > a.pid; wait' } }
  b: { task_type: command, config: { shell: true, script: 'trap "" TERM; echo $$ > b.pid; while true; do sleep 1; done' } }
  c: { task_type: sleep, config: { seconds: 300 } }
  d: { task_type: echo, dependencies: [a] }
"#,
    );
    let child = orch()
        .args([
            "run",
            "w.yaml",
            "--output",
            "r.json",
            "--max-concurrent",
            "3",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orch starts");
    for file in ["a.pid", "a-child.pid", "b.pid"] {
        wait_for(file, || pid_in_if_any(&dir.join(file)).is_some());
    }
    let pids: Vec<i32> = ["a.pid", "a-child.pid", "b.pid"]
        .iter()
        .map(|f| pid_in(&dir.join(f)))
        .collect();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT sent");
    let output = child.wait_with_output().expect("orch ends");
    let (code, stdout, stderr) = parts(&output);
    assert_eq!(code, Some(130), "{stdout}{stderr}");
    assert!(
        stdout.contains("workflow `w` was interrupted after"),
        "{stdout}"
    );
    let result = dir.json("r.json");
    assert_eq!(result["status"], "cancelled");
    for task in ["a", "b", "c", "d"] {
        assert_eq!(status(&result, task), "cancelled", "{task}");
    }
    // `b` ignores SIGTERM: it was killed after the grace period.
    for pid in pids {
        wait_for(&format!("process {pid} to end"), || !alive(pid));
    }
}

fn pid_in_if_any(path: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn terminal_escapes_a_command_writes_to_stderr_are_shown_escaped() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  red: { task_type: command, config: { shell: true, script: 'printf "\033[2Jgone\n" >&2; exit 1' } }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
    assert!(stdout.contains("stderr ends: \\u{1b}[2Jgone"), "{stdout}");
    // The result file keeps the error as it was.
    let error = error(&dir.json("r.json"), "red");
    assert!(error.ends_with("stderr ends: \u{1b}[2Jgone"), "{error:?}");
}

#[test]
fn commands_run_when_orch_is_started_with_sigchld_ignored() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  t: { task_type: command, config: { program: 'true' } }\n",
    );
    // A parent may hand down an ignored SIGCHLD (GNU env sets one up).
    let mut command = std::process::Command::new("env");
    command
        .args(["--ignore-signal=CHLD", env!("CARGO_BIN_EXE_orch")])
        .args(["run", "w.yaml", "--output", "r.json"])
        .env_remove("RUST_LOG")
        .current_dir(dir.path());
    let (code, stdout, stderr) = parts(&command.output().expect("env runs"));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(status(&dir.json("r.json"), "t"), "completed");
}

/// JSON text `depth` arrays deep.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn json_output_too_deep_for_a_result_file_fails_its_task_or_is_kept_as_text() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        &format!(
            r#"workflow_id: w
tasks:
  deepest: {{ task_type: command, config: {{ program: printf, args: ['{ok}'], capture: json }} }}
  too_deep: {{ task_type: command, config: {{ program: printf, args: ['{deep}'], capture: json }} }}
  too_deep_auto: {{ task_type: command, config: {{ program: printf, args: ['{deep}'] }} }}
"#,
            ok = nested(124),
            deep = nested(125),
        ),
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    // The result file reads back (here and in `orch report`).
    let result = dir.json("r.json");
    assert_eq!(status(&result, "deepest"), "completed");
    assert_eq!(
        (status(&result, "too_deep"), error(&result, "too_deep")),
        (
            "failed".to_owned(),
            "standard output is JSON nested 125 levels deep, and a result file reads back at \
             most 124 (set `capture: text` to keep it as text)"
                .to_owned()
        )
    );
    assert_eq!(result["tasks"]["too_deep_auto"]["result"], nested(125));
    let (code, stdout, stderr) = parts(&run_in(&dir, &["report", "r.json", "-o", "r.html"]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

/// A map task's list holds its instances' outputs one level further down: an instance's
/// output may nest one level less than a task's, or the result file would not read back.
#[test]
fn a_map_instances_json_output_may_nest_one_level_less() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        &format!(
            r#"workflow_id: w
tasks:
  list: {{ task_type: echo, config: {{ message: [1] }} }}
  deepest: {{ task_type: command, dependencies: [list], map: {{ over: list }}, config: {{ program: printf, args: ['{ok}'], capture: json }} }}
  too_deep: {{ task_type: command, dependencies: [list], map: {{ over: list }}, config: {{ program: printf, args: ['{deep}'], capture: json }} }}
"#,
            ok = nested(123),
            deep = nested(124),
        ),
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(status(&result, "deepest"), "completed");
    assert_eq!(
        error(&result, "too_deep[0]"),
        "standard output is JSON nested 124 levels deep, and a result file reads back at \
         most 123 (set `capture: text` to keep it as text)"
    );
    let (code, stdout, stderr) = parts(&run_in(&dir, &["report", "r.json", "-o", "r.html"]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

#[test]
fn bad_commands_fail_their_task_with_a_clear_error_and_a_complete_result() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  missing: { task_type: command, retries: 3, config: { program: orch-test-no-such-program } }
  binary: { task_type: command, config: { program: printf, args: ['ok\377\376'] } }
  binary_kept: { task_type: command, config: { program: printf, args: ['\377\376'], capture: base64 } }
  huge: { task_type: command, config: { program: head, args: [-c, '2000000', /dev/zero] } }
  endless: { task_type: command, config: { program: 'yes' } }
  small_limit: { task_type: command, config: { program: echo, args: [12345], max_output_bytes: 5 } }
  exact_limit: { task_type: command, config: { program: printf, args: ['12345'], max_output_bytes: 5 } }
  not_json: { task_type: command, config: { program: echo, args: [hi], capture: json } }
  after_missing: { task_type: echo, dependencies: [missing] }
"#,
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &["--max-concurrent", "4"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result = dir.json("r.json");
    let limit = "standard output passed the capture limit of 1048576 bytes, so the command was stopped (raise `max_output_bytes`, or set `capture: none`)";
    let expected = [
        (
            "missing",
            "failed",
            "cannot start `orch-test-no-such-program`: program not found",
        ),
        (
            "binary",
            "failed",
            "standard output is not UTF-8 text (invalid byte at offset 2); set `capture: base64` to keep binary output",
        ),
        ("binary_kept", "completed", ""),
        ("huge", "failed", limit),
        ("endless", "failed", limit),
        (
            "small_limit",
            "failed",
            "standard output passed the capture limit of 5 bytes, so the command was stopped (raise `max_output_bytes`, or set `capture: none`)",
        ),
        ("exact_limit", "completed", ""),
        (
            "not_json",
            "failed",
            "standard output is not JSON (`capture: json`): expected value at line 1 column 1",
        ),
        ("after_missing", "skipped", "dependency `missing` failed"),
    ];
    for (task, want_status, want_error) in expected {
        assert_eq!(
            (
                status(&result, task).as_str(),
                error(&result, task).as_str()
            ),
            (want_status, want_error),
            "{task}"
        );
    }
    // A program that cannot start is not retried.
    assert_eq!(result["tasks"]["missing"]["attempts"], 1);
    assert_eq!(result["tasks"]["binary_kept"]["result"], "//4=");
    assert_eq!(result["tasks"]["exact_limit"]["result"], 12345);
}

/// A program that is there but whose interpreter is not (a script whose `#!` line ends
/// with a carriage return, as written on Windows) fails with an error that says so, not
/// "program not found", and is not retried.
#[test]
fn a_script_whose_interpreter_is_missing_says_so() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Dir::new();
    for (name, text) in [
        ("crlf.sh", "#!/bin/sh\r\necho hi\r\n"),
        ("gone.sh", "#!  /orch-test/no-such-shell -e\necho hi\n"),
    ] {
        let script = dir.write(name, text);
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("made executable");
    }
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  crlf: { task_type: command, retries: 2, config: { program: ./crlf.sh } }\n  \
         gone: { task_type: command, config: { program: ./gone.sh } }\n",
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result = dir.json("r.json");
    let file = |name: &str| dir.path().join(".").join(name).display().to_string();
    assert_eq!(
        error(&result, "crlf"),
        format!(
            "cannot start `./crlf.sh` ({}): the interpreter its first line names, `/bin/sh\\r`, \
             was not found",
            file("crlf.sh")
        )
    );
    assert_eq!(
        error(&result, "gone"),
        format!(
            "cannot start `./gone.sh` ({}): the interpreter its first line names, \
             `/orch-test/no-such-shell -e`, was not found",
            file("gone.sh")
        )
    );
    assert_eq!(result["tasks"]["crlf"]["attempts"], 1);
}

#[test]
fn files_that_cannot_run_exit_1_before_anything_starts() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: command, config: { program: 'touch', args: [ran] } }\n  b: { task_type: slep }\n",
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    assert_eq!(
        stderr,
        "w.yaml:4:19: task `b` has unknown task type `slep` (orch runs: command, sleep, echo) (did you mean `sleep`?)\nw.yaml: not run: 1 problem(s)\n"
    );
    assert!(!dir.join("ran").exists() && !dir.join("r.json").exists());
    let (code, _, stderr) = run_file(&dir, "nowhere.yaml", &[]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("nowhere.yaml: cannot read: No such file or directory"),
        "{stderr}"
    );
}

#[test]
fn a_result_file_that_cannot_be_written_exits_2() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: echo }\n",
    );
    let (code, _, stderr) = parts(&run_in(
        &dir,
        &["run", "w.yaml", "--output", "no/such/dir/r.json"],
    ));
    assert_eq!(code, Some(2));
    // The system's words, not the name of a temporary file orch tried to make there.
    assert!(
        stderr.contains(
            "cannot write result file no/such/dir/r.json: No such file or directory (os error 2)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains(".tmp"), "{stderr}");
}

#[test]
fn logs_can_be_json_and_rust_log_chooses_what_shows() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: command, config: { shell: true, script: 'echo one >&2; printf \"two\\377\" >&2' } }\n",
    );
    let (code, _, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "--log-format", "json"]));
    assert_eq!(code, Some(0), "{stderr}");
    let logged: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    let lines: Vec<(&str, &str, &str)> = logged
        .iter()
        .map(|l| {
            let text = |key: [&str; 2]| l[key[0]][key[1]].as_str().unwrap_or_default();
            (
                l["level"].as_str().unwrap_or_default(),
                text(["span", "id"]),
                text(["fields", "message"]),
            )
        })
        .collect();
    assert_eq!(lines, [("INFO", "a", "one"), ("INFO", "a", "two\u{fffd}")]);

    let mut command = orch();
    command
        .args(["run", "w.yaml"])
        .current_dir(dir.path())
        .env("RUST_LOG", "error");
    let (code, _, stderr) = parts(&common::output(command));
    assert_eq!((code, stderr.as_str()), (Some(0), ""));

    // A RUST_LOG that is not UTF-8 is said to be ignored, not silently.
    let mut command = orch();
    command.args(["run", "w.yaml"]).current_dir(dir.path()).env(
        "RUST_LOG",
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"error\xff"),
    );
    let (code, _, stderr) = parts(&common::output(command));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.starts_with("orch: ignoring RUST_LOG: not valid UTF-8\n"),
        "{stderr}"
    );
}

#[test]
fn programs_are_found_beside_the_workflow_and_on_the_commands_path() {
    use std::os::unix::fs::PermissionsExt;

    let dir = Dir::new();
    std::fs::create_dir(dir.join("tools")).expect("a directory");
    for name in ["hello.sh", "tools/greet"] {
        let path = dir.write(name, "#!/bin/sh\necho \"$0 $1\"\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("executable");
    }
    std::fs::create_dir(dir.join("sub")).expect("a directory");
    dir.write(
        "sub/w.yaml",
        "workflow_id: w\ntasks:\n  local: { task_type: command, config: { program: ../hello.sh, args: [x] } }\n  on_path: { task_type: command, config: { program: greet, args: [y], env: { PATH: ../tools } } }\n  in_cwd: { task_type: command, config: { program: ./greet, args: [z], cwd: ../tools } }\n",
    );
    let (code, stdout, stderr) = run_file(&dir, "sub/w.yaml", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let result = dir.json("r.json");
    // A script's `$0` is the file the system ran.
    let ran = |task: &str| {
        result["tasks"][task]["result"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        ran("local").ends_with("/sub/../hello.sh x"),
        "{}",
        ran("local")
    );
    assert!(
        ran("on_path").ends_with("/sub/../tools/greet y"),
        "{}",
        ran("on_path")
    );
    assert!(
        ran("in_cwd").ends_with("/sub/../tools/./greet z"),
        "{}",
        ran("in_cwd")
    );
}

#[test]
fn a_failed_attempt_is_retried_with_its_attempt_number() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  flaky:\n    task_type: command\n    retries: 2\n    backoff: { initial: 0.01, jitter: false }\n    config: { shell: true, script: 'echo \"attempt $ORCH_ATTEMPT\" >&2; [ \"$ORCH_ATTEMPT\" -ge 3 ] && echo done' }\n",
    );
    let (code, stdout, stderr) = run_file(&dir, "w.yaml", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(result["tasks"]["flaky"]["attempts"], 3);
    assert_eq!(result["tasks"]["flaky"]["result"], "done");
    assert_eq!(
        stdout.matches("] retrying   flaky after attempt").count(),
        2,
        "{stdout}"
    );
    for attempt in 1..=3 {
        assert!(
            stderr.contains(&format!("task{{id=flaky}}: attempt {attempt}")),
            "{stderr}"
        );
    }
}

#[test]
fn sigterm_cancels_like_ctrl_c_and_exits_143() {
    let dir = Dir::new();
    let (child, pid) = start_sleeper(&dir, &["--output", "r.json"]);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM sent");
    let (code, stdout, stderr) = parts(&child.wait_with_output().expect("orch ends"));
    assert_eq!(code, Some(143), "{stdout}{stderr}");
    assert_eq!(status(&dir.json("r.json"), "a"), "cancelled");
    wait_for("the command to end", || !alive(pid));
}
