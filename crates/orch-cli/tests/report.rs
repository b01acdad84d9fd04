//! `orch report` and `orch gantt`: the HTML page is self-contained and renders in headless
//! Chromium with one bar per task that ran and no console errors; the terminal timeline
//! marks the critical path.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Dir, in_ci, installed, parts, run_in};

/// Three tasks run (`a -> b`, `c` fails), one is skipped: three bars.
const WORKFLOW: &str = "workflow_id: r\nname: Report <test>\ntasks:\n  a: { task_type: sleep, config: { seconds: 0.2 } }\n  b: { task_type: sleep, config: { seconds: 0.1 }, dependencies: [a] }\n  c: { task_type: command, config: { program: 'false' } }\n  d: { task_type: echo, dependencies: [c] }\n";

/// A result file of a run of [`WORKFLOW`].
fn ran(dir: &Dir) {
    dir.write("r.yaml", WORKFLOW);
    let (code, stdout, stderr) = parts(&run_in(
        dir,
        &[
            "run",
            "r.yaml",
            "--max-concurrent",
            "2",
            "--output",
            "r.json",
        ],
    ));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
}

#[test]
fn the_report_is_one_self_contained_page() {
    let dir = Dir::new();
    ran(&dir);
    let (code, stdout, stderr) = parts(&run_in(&dir, &["report", "r.json", "-o", "run.html"]));
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "report written to run.html\n"),
        "{stderr}"
    );
    let page = std::fs::read_to_string(dir.join("run.html")).expect("written");
    assert!(page.starts_with("<!doctype html>"));
    // Nothing is fetched: no sources, links or imports; the only URL is SVG's namespace.
    for fetch in ["src=", "href=", "@import", "url(http", "<link"] {
        assert!(!page.contains(fetch), "{fetch} in the page");
    }
    assert_eq!(
        page.matches("http").count(),
        page.matches("http://www.w3.org/2000/svg").count()
    );
    assert_eq!(page.matches("<rect class=\"bar ").count(), 3);
    assert_eq!(
        page.matches("<rect class=\"bar completed critical\"")
            .count(),
        2
    );
    assert_eq!(page.matches("<g class=\"node ").count(), 4);
    assert!(page.contains("<g class=\"node skipped\" data-task=\"d\">"));
    assert!(page.contains("Report &lt;test&gt;"));
    assert!(page.contains("a → b"));
}

/// The task table lists each instance of a map task after it, with its own record.
#[test]
fn the_report_lists_the_instances_of_a_map_task() {
    let dir = Dir::new();
    dir.write(
        "m.yaml",
        "workflow_id: m\ntasks:\n  list: { task_type: echo, config: { message: [1, 2, 3] } }\n  each: { task_type: command, dependencies: [list], map: { over: list }, config: { shell: true, script: 'test \"$ORCH_ITEM\" != 2' } }\n",
    );
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "m.yaml", "-o", "r.json"]));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let (code, _, stderr) = parts(&run_in(&dir, &["report", "r.json", "-o", "run.html"]));
    assert_eq!(code, Some(0), "{stderr}");
    let page = std::fs::read_to_string(dir.join("run.html")).expect("written");
    let table = &page[page.find("<table id=\"tasks\">").expect("the task table")..];
    let rows: Vec<&str> = table
        .match_indices("<tr data-task=\"")
        .map(|(at, found)| {
            let rest = &table[at + found.len()..];
            &rest[..rest.find('"').expect("a closing quote")]
        })
        .collect();
    assert_eq!(rows, ["list", "each", "each[0]", "each[1]", "each[2]"]);
    assert!(
        table.contains("<tr data-task=\"each[1]\"><td>each[1]</td><td>command</td><td>failed</td>")
    );
    // The figures count the workflow's two tasks apart from the map's instances, as the
    // run's summary does.
    let figures = &page[page.find("<table id=\"metrics\">").expect("the figures")..];
    for row in [("tasks", "2"), ("completed", "1"), ("failed", "1")] {
        let shown = format!(
            "<tr><th>{}</th><td class=\"num\">{}</td></tr>",
            row.0, row.1
        );
        assert!(figures.contains(&shown), "{shown} in {figures}");
    }
    // The third instance completes, or is skipped once the second fails: both may be.
    let instances = "<tr><th>map instances</th><td class=\"num\">3: ";
    let counts = &figures[figures.find(instances).expect("the instances' row") + instances.len()..];
    let counts = &counts[..counts.find('<').expect("the cell's end")];
    assert!(
        ["2 completed, 1 failed", "1 completed, 1 failed, 1 skipped"].contains(&counts),
        "{counts}"
    );
}

/// A plain task whose name reads like an instance id (`a[0]`, where `a` is no map task) is
/// listed once, as itself: the table once also listed it as an instance of `a`, with
/// `a`'s type.
#[test]
fn a_task_named_like_an_instance_of_a_plain_task_is_listed_once_as_itself() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: echo }\n  \"a[0]\": { task_type: sleep, config: { seconds: 0 } }\n",
    );
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "-o", "r.json"]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let (code, _, stderr) = parts(&run_in(&dir, &["report", "r.json", "-o", "run.html"]));
    assert_eq!(code, Some(0), "{stderr}");
    let page = std::fs::read_to_string(dir.join("run.html")).expect("written");
    let table = &page[page.find("<table id=\"tasks\">").expect("the task table")..];
    assert_eq!(table.matches("<tr data-task=").count(), 2, "{table}");
    assert_eq!(
        table.matches("<tr data-task=\"a[0]\">").count(),
        1,
        "{table}"
    );
    assert!(
        table.contains("<tr data-task=\"a[0]\"><td>a[0]</td><td>sleep</td><td>completed</td>"),
        "{table}"
    );
}

/// A run result without its workflow.
const PLAIN: &str = r#"{"workflow_id": "w", "name": "", "status": "completed", "start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-01T00:00:01Z", "max_concurrent": 1, "tasks": {}}"#;

#[test]
fn a_result_without_its_workflow_cannot_be_reported() {
    let dir = Dir::new();
    dir.write("plain.json", PLAIN);
    let (code, _, stderr) = parts(&run_in(&dir, &["report", "plain.json", "-o", "x.html"]));
    assert_eq!(code, Some(1));
    assert!(
        stderr
            .contains("plain.json holds no `workflow`: it was not written by `orch run --output`"),
        "{stderr}"
    );
    dir.write("bad.json", "{\"workflow_id\": 3}");
    let (code, _, stderr) = parts(&run_in(&dir, &["gantt", "bad.json"]));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("bad.json:1:17: not a run result: at `workflow_id`"),
        "{stderr}"
    );
    // A workflow file given by mistake is told apart.
    dir.write("w.yaml", "workflow_id: w\ntasks: {}\n");
    let (code, _, stderr) = parts(&run_in(&dir, &["gantt", "w.yaml"]));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(
            "w.yaml:1:1: not a run result: at `.`: expected value (a run result is the JSON file `orch run --output` writes)"
        ),
        "{stderr}"
    );
    // A JSON file damaged further on is not told that.
    dir.write("cut.json", "{\"workflow_id\": \"w\",,");
    let (_, _, stderr) = parts(&run_in(&dir, &["gantt", "cut.json"]));
    assert!(
        stderr.contains("cut.json:1:21: not a run result"),
        "{stderr}"
    );
    assert!(!stderr.contains("(a run result is"), "{stderr}");
    // Placed once, in characters: `é` is two bytes.
    dir.write(
        "accented.json",
        "{\"workflow_id\": \"é\", \"status\": \"terminé\"}",
    );
    let (code, _, stderr) = parts(&run_in(&dir, &["gantt", "accented.json"]));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(
            "accented.json:1:40: not a run result: at `status`: unknown variant `terminé`"
        ) && !stderr.contains("at line"),
        "{stderr}"
    );
    // The workflow in a result is read as a workflow file is: `orch validate` refuses a
    // backoff given as a list, and so does this.
    let plain = PLAIN.strip_suffix('}').expect("an object");
    let workflow = "{\"workflow_id\": \"w\", \"name\": \"\", \"tasks\": [\n  \
         {\"task_id\": \"a\", \"task_type\": \"echo\", \"backoff\": [0.1, 2, 30, true]}]}";
    dir.write(
        "listed.json",
        &format!("{plain},\n\"workflow\": {workflow}}}"),
    );
    let (code, _, stderr) = parts(&run_in(&dir, &["gantt", "listed.json"]));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("listed.json:3:")
            && stderr.contains("invalid workflow: at `workflow.tasks[0].backoff`"),
        "{stderr}"
    );
    dir.write("two.json", &format!("{PLAIN}\n{PLAIN}\n"));
    let (code, _, stderr) = parts(&run_in(&dir, &["gantt", "two.json"]));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("two.json:2:1: not a run result: more text after its closing `}`"),
        "{stderr}"
    );
}

/// A task a resumed run restored ran before the run started: the timeline says so in
/// place of a bar (it drew one at the start, a moment long).
#[test]
fn a_task_from_an_earlier_run_has_no_bar_and_says_so() {
    let dir = Dir::new();
    ran(&dir);
    let mut result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).expect("read"))
            .expect("JSON");
    let a = &mut result["tasks"]["a"];
    a["start_time"] = "2000-01-01T00:00:00Z".into();
    a["end_time"] = "2000-01-01T00:00:01Z".into();
    dir.write("resumed.json", &result.to_string());
    let (code, stdout, stderr) = parts(&run_in(&dir, &["gantt", "resumed.json", "--width", "80"]));
    assert_eq!(code, Some(0), "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l[2..].starts_with("a "))
        .unwrap_or_else(|| panic!("a's row: {stdout}"));
    assert!(line.ends_with("| completed in an earlier run"), "{line}");
    assert!(!line.contains(['█', '▒']), "{line}");
    // The bars make room for that text: no line is wider than asked.
    let widest = stdout.lines().map(|l| l.chars().count()).max();
    assert_eq!(widest, Some(80), "{stdout}");
}

#[test]
fn the_terminal_timeline_marks_the_critical_path() {
    let dir = Dir::new();
    ran(&dir);
    let (code, stdout, _) = parts(&run_in(&dir, &["gantt", "r.json", "--width", "60"]));
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    let row = |id: &str| {
        *lines
            .iter()
            .find(|l| l[2..].starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("{id}: {stdout}"))
    };
    assert!(
        row("a").starts_with("* a") && row("a").contains('█'),
        "{stdout}"
    );
    assert!(row("b").starts_with("* b"), "{stdout}");
    assert!(
        row("c").starts_with("  c") && row("c").contains('▒'),
        "{stdout}"
    );
    assert!(row("d").ends_with("| skipped"), "{stdout}");
    // `b` starts where `a` ends.
    let start = |line: &str| line.chars().position(|c| c == '█' || c == '▒').unwrap_or(0);
    assert!(start(row("b")) > start(row("a")));
}

/// Runs headless Chromium on `page` with `action` (`--dump-dom` or `--screenshot=...`);
/// its standard output and standard error (console messages included).
fn chromium(page: &Path, action: &str) -> (String, String) {
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut command = Command::new("chromium");
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1200,1600",
    ]);
    command.arg(format!("--user-data-dir={}", profile.path().display()));
    command
        .arg(action)
        .arg(format!("file://{}", page.display()));
    let output = common::output(command);
    let (code, stdout, stderr) = parts(&output);
    assert_eq!(code, Some(0), "chromium failed: {stderr}");
    (stdout, stderr)
}

/// Console messages and uncaught errors in Chromium's log.
fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect()
}

#[test]
fn the_report_renders_in_chromium_with_a_bar_per_task_and_no_console_errors() {
    if !installed("chromium") {
        assert!(
            !in_ci(),
            "CI=true and chromium is missing: .ci/run installs it"
        );
        println!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    }
    let dir = Dir::new();
    ran(&dir);
    assert_eq!(
        run_in(&dir, &["report", "r.json", "-o", "run.html"])
            .status
            .code(),
        Some(0)
    );
    let page = dir.join("run.html");
    let (dom, log) = chromium(&page, "--dump-dom");
    // The page's script ran and counted the bars it rendered.
    assert!(dom.contains("data-rendered-bars=\"3\""), "{dom}");
    assert_eq!(dom.matches("<rect class=\"bar ").count(), 3);
    assert_eq!(console_errors(&log), Vec::<&str>::new());

    let shot = dir.join("shot.png");
    let (_, log) = chromium(&page, &format!("--screenshot={}", shot.display()));
    assert_eq!(console_errors(&log), Vec::<&str>::new());
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );

    // The check sees a script error when there is one.
    let broken = dir.write(
        "broken.html",
        "<!doctype html><body><script>noSuchFunction();</script></body>",
    );
    let (_, log) = chromium(&broken, "--dump-dom");
    assert_eq!(console_errors(&log).len(), 1, "{log}");
}

/// The result file in `dir` with its run's start time replaced by `time`.
fn started_at(dir: &Dir, time: &str) {
    let text = std::fs::read_to_string(dir.join("r.json")).expect("the result file");
    let (head, rest) = text.split_once("\"start_time\": \"").expect("a start time");
    let (_, tail) = rest.split_once('"').expect("its end");
    dir.write("r.json", &format!("{head}\"start_time\": \"{time}\"{tail}"));
}

#[test]
fn any_start_time_is_written_whole_in_the_report() {
    let dir = Dir::new();
    ran(&dir);
    for (time, shown) in [
        ("1969-12-31T23:59:59Z", "started 1969-12-31T23:59:59Z,"),
        (
            "+10000-01-01T00:00:00.5Z",
            "started +10000-01-01T00:00:00Z,",
        ),
    ] {
        started_at(&dir, time);
        let (code, stdout, stderr) = parts(&run_in(&dir, &["report", "r.json", "-o", "r.html"]));
        assert_eq!(code, Some(0), "{time}: {stdout}{stderr}");
        let page = std::fs::read_to_string(dir.join("r.html")).expect("the report");
        assert!(page.contains(shown), "{time}: {page}");
    }
}

#[test]
fn a_timeline_too_wide_is_refused_with_the_widest_allowed() {
    let dir = Dir::new();
    ran(&dir);
    let (code, stdout, stderr) = parts(&run_in(&dir, &["gantt", "r.json", "--width", "70000"]));
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("70000 is not in 1..=10000"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, stdout, stderr) = parts(&run_in(&dir, &["gantt", "r.json", "--width", "10000"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.lines().all(|l| l.chars().count() <= 10_000),
        "{stdout}"
    );
}

#[test]
fn the_report_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    ran(&dir);
    let mode = |name: &str| {
        std::fs::metadata(dir.join(name))
            .expect("the file")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("r.json"), 0o600);
    // A new report, and one written over a report others could read.
    let old = dir.write("old.html", "an older report");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("mode set");
    for name in ["new.html", "old.html"] {
        let (code, stdout, stderr) = parts(&run_in(&dir, &["report", "r.json", "-o", name]));
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        assert_eq!(mode(name), 0o600, "{name}");
        let page = std::fs::read_to_string(dir.join(name)).expect("the report");
        assert!(page.starts_with("<!doctype html>"), "{name}");
    }
    // Nothing else was left in the directory.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("listed")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    assert_eq!(names, ["new.html", "old.html", "r.json", "r.yaml"]);
}
