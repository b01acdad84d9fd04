//! What `orch run` shows: a progress bar in a real pseudo-terminal, one line per event
//! when standard output is not a terminal, and a readable summary either way.

mod common;

use std::io::Read;
use std::process::Stdio;

use common::{Dir, orch, parts, run_in};
use nix::pty::{Winsize, openpty};

const WORKFLOW: &str = "workflow_id: t\ntasks:\n  a: { task_type: sleep, config: { seconds: 0.3 } }\n  b: { task_type: sleep, config: { seconds: 0.3 } }\n  c: { task_type: command, config: { program: 'false' } }\n  d: { task_type: echo, dependencies: [a, b] }\n  e: { task_type: echo, dependencies: [c] }\n";

/// The lines a terminal would show for `text`: a carriage return moves back to the start
/// of the line, `ESC [ 2 K` clears it (`ESC [ K` clears from the cursor), other escape
/// sequences (colours) change nothing.
fn screen_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line: Vec<char> = Vec::new();
    let mut cursor = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                let mut parameters = String::new();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() || c == '~' {
                        if c == 'K' && parameters == "[2" {
                            line.clear();
                        } else if c == 'K' {
                            line.truncate(cursor);
                        }
                        break;
                    }
                    parameters.push(c);
                }
            }
            '\r' => cursor = 0,
            '\n' => {
                lines.push(line.drain(..).collect());
                cursor = 0;
            }
            c => {
                if cursor < line.len() {
                    line[cursor] = c;
                } else {
                    line.resize(cursor, ' ');
                    line.push(c);
                }
                cursor += 1;
            }
        }
    }
    if !line.is_empty() {
        lines.push(line.into_iter().collect());
    }
    lines
}

/// Runs `orch ARGS` in `dir` on a 100-column pseudo-terminal; its exit code and all it
/// wrote there.
fn run_in_terminal(dir: &Dir, args: &[&str]) -> (Option<i32>, String) {
    let size = Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(&size, None).expect("a pseudo-terminal");
    let slave = std::fs::File::from(pty.slave);
    let mut child = orch()
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(slave.try_clone().expect("a second handle"))
        .stderr(slave)
        .spawn()
        .expect("orch starts");
    // The parent's copies of the terminal's slave side are gone (moved into the child's
    // standard streams), so reading the master side ends when orch exits.
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = master.read(&mut chunk) {
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        bytes
    });
    let status = child.wait().expect("orch ends");
    let screen = String::from_utf8_lossy(&reader.join().expect("the reader ends")).into_owned();
    (status.code(), screen)
}

#[test]
fn a_terminal_gets_a_progress_bar_and_a_readable_summary() {
    let dir = Dir::new();
    dir.write("t.yaml", WORKFLOW);
    let (code, screen) = run_in_terminal(&dir, &["run", "t.yaml", "--max-concurrent", "2"]);
    assert_eq!(code, Some(1), "{screen}");
    // The bar, as drawn at some moment: counts out of 5 and the status line.
    let drawn: Vec<String> = screen
        .split(['\r', '\n'])
        .map(|part| part.replace("\x1b[2K", ""))
        .collect();
    let bar = |d: &String| {
        let Some((bar, rest)) = d.split_once("] ") else {
            return false;
        };
        let bar = bar.rsplit_once('[').map_or("", |(_, b)| b);
        bar.chars().count() == 30
            && bar.chars().all(|c| "=> ".contains(c))
            && (0..=5).any(|n| rest.starts_with(&format!("{n}/5 done ")))
    };
    assert!(drawn.iter().any(bar), "no progress bar in {screen:?}");
    // What stays on the screen: the summary, whole, and no bar or event lines.
    let lines = screen_lines(&screen);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("workflow `t` failed after "),
        "{lines:#?}"
    );
    assert!(
        lines[0].ends_with("s: 5 tasks: 3 completed, 1 failed, 1 skipped, 0 cancelled"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "  failed    c: `false` exited with status 1");
    assert_eq!(lines[2], "  skipped   e: dependency `c` failed");
}

#[test]
fn a_pipe_gets_one_line_per_event() {
    let dir = Dir::new();
    dir.write("t.yaml", WORKFLOW);
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "t.yaml", "--max-concurrent", "2"]));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    let summary = lines
        .iter()
        .position(|l| l.starts_with("workflow `t` failed"))
        .expect("a summary");
    let mut kinds = Vec::new();
    for line in &lines[..summary] {
        // `[   0.301s] completed  a in 0.300s`
        let rest = line.strip_prefix('[').unwrap_or_else(|| panic!("{line:?}"));
        let (time, rest) = rest.split_once("s] ").unwrap_or_else(|| panic!("{line:?}"));
        assert!(time.trim().parse::<f64>().is_ok(), "{line:?}");
        let (kind, task) = rest.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        kinds.push((
            kind.to_owned(),
            task.trim_start().chars().next().unwrap_or(' '),
        ));
    }
    let count = |kind: &str| kinds.iter().filter(|(k, _)| k == kind).count();
    assert_eq!(
        (
            count("started"),
            count("completed"),
            count("failed"),
            count("skipped")
        ),
        (4, 3, 1, 1),
        "{stdout}"
    );
    assert_eq!(kinds.len(), 9, "{stdout}");
    // Each task's start comes before its end, and `d` starts after `a` and `b` ended.
    let at = |kind: &str, task: char| {
        kinds
            .iter()
            .position(|k| k.0 == kind && k.1 == task)
            .unwrap_or(usize::MAX)
    };
    assert!(at("started", 'd') > at("completed", 'a').max(at("completed", 'b')));
    assert!(at("started", 'c') < at("failed", 'c') && at("failed", 'c') < at("skipped", 'e'));
}

#[test]
fn progress_none_prints_only_the_summary() {
    let dir = Dir::new();
    dir.write("t.yaml", WORKFLOW);
    let (code, stdout, _) = parts(&run_in(&dir, &["run", "t.yaml", "--progress", "none"]));
    assert_eq!(code, Some(1));
    assert!(stdout.starts_with("workflow `t` failed after "), "{stdout}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
}

#[test]
fn a_run_that_ends_without_a_result_leaves_no_bar_on_the_terminal() {
    let dir = Dir::new();
    let workflow = "workflow_id: p\ntasks:\n  a: { task_type: echo, config: { message: one } }\n";
    dir.write("p.yaml", workflow);
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "p.yaml", "--journal", "j"]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let run_id = stdout
        .split_whitespace()
        .nth(1)
        .expect("the run's id")
        .to_owned();
    // Resumed with a changed task that completed: the journal refuses it once the run
    // has started (and drawn its bar).
    dir.write("p.yaml", &workflow.replace("one", "two"));
    let (code, screen) = run_in_terminal(
        &dir,
        &["run", "p.yaml", "--journal", "j", "--resume", &run_id],
    );
    assert_eq!(code, Some(1), "{screen}");
    assert!(screen.contains("0/1"), "no bar was drawn: {screen:?}");
    let lines = screen_lines(&screen);
    assert!(
        lines.iter().all(|l| !l.contains("0/1")),
        "a bar stayed: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("p.yaml: not run:")),
        "{lines:#?}"
    );
}

/// A map's instances are counted apart from the workflow's tasks, as the bar counts them.
/// The failed instance is listed with its own error; the one its failure stopped is not
/// listed (the map task's line says why). One task at a time, the instances run in order.
#[test]
fn the_summary_counts_map_instances_apart_from_tasks() {
    let dir = Dir::new();
    dir.write(
        "m.yaml",
        "workflow_id: m\ntasks:\n  list: { task_type: echo, config: { message: [1, 2, 3] } }\n  sq: { task_type: command, dependencies: [list], map: { over: list }, config: { shell: true, script: 'test \"$ORCH_ITEM\" != 2' } }\n",
    );
    let args = [
        "run",
        "m.yaml",
        "--progress",
        "none",
        "--max-concurrent",
        "1",
    ];
    let (code, stdout, stderr) = parts(&run_in(&dir, &args));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0].split_once("s: ").map(|(_, counts)| counts),
        Some(
            "2 tasks: 1 completed, 1 failed, 0 skipped, 0 cancelled; \
             3 map instances: 1 completed, 1 failed, 1 skipped"
        ),
        "{stdout}"
    );
    assert_eq!(
        lines[1..],
        [
            "  failed    sq: instance `sq[1]` failed: `sh` exited with status 1",
            "  failed    sq[1]: `sh` exited with status 1",
        ],
        "{stdout}"
    );
}
