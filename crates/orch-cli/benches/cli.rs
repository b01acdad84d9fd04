//! What the `orch` command costs: `orch run` of 1,000 `command` tasks running `true` at
//! concurrency 8, against a plain tokio::process loop doing the same spawns at the same
//! concurrency; the line-per-event display's share; and `orch validate` of a
//! 100,000-task file. Each figure is the median of a few runs, printed as a table.
//!
//! `cargo bench -p orch-cli --bench cli`
//!
//! `cargo xtask bench` runs one case per process, `... --bench cli -- --row CASE` (CASE:
//! `tokio-loop`, `run-none`, `run-lines`, `validate`), which prints that case as one row
//! of its table: a JSON object with `case`, `tasks`, `ns_per_task`, `tasks_per_s` (from
//! the median wall time) and `peak_rss_bytes` (of this process for the loop, else of the
//! largest child, `orch`, which counts this process's peak as it started `orch` too: the
//! files are written a task at a time to keep that small).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use tokio::sync::Semaphore;

const TASKS: usize = 1_000;
const CONCURRENCY: usize = 8;
const VALIDATE_TASKS: usize = 100_000;
const REPEATS: usize = 5;

/// Wall time and CPU time (user + system, of this process and the children it waited for).
#[derive(Clone, Copy)]
struct Cost {
    wall: Duration,
    cpu: Duration,
}

fn cpu_so_far() -> Duration {
    let time = |who| {
        getrusage(who).map_or(Duration::ZERO, |u| {
            let (user, system) = (u.user_time(), u.system_time());
            Duration::new(user.tv_sec() as u64, user.tv_usec() as u32 * 1000)
                + Duration::new(system.tv_sec() as u64, system.tv_usec() as u32 * 1000)
        })
    };
    time(UsageWho::RUSAGE_SELF) + time(UsageWho::RUSAGE_CHILDREN)
}

/// The median wall and CPU times of `REPEATS` runs of `f` (each sorted on its own).
fn measure(mut f: impl FnMut()) -> Cost {
    let (mut walls, mut cpus): (Vec<Duration>, Vec<Duration>) = (0..REPEATS)
        .map(|_| {
            let (start, cpu) = (Instant::now(), cpu_so_far());
            f();
            (start.elapsed(), cpu_so_far() - cpu)
        })
        .unzip();
    walls.sort();
    cpus.sort();
    Cost {
        wall: walls[REPEATS / 2],
        cpu: cpus[REPEATS / 2],
    }
}

/// `TASKS` spawns of `true`, `CONCURRENCY` at a time, each with its output piped and in a
/// process group of its own, as `orch run` starts a command.
fn tokio_loop(runtime: &tokio::runtime::Runtime) {
    runtime.block_on(async {
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let mut spawned = tokio::task::JoinSet::new();
        for _ in 0..TASKS {
            let permit = Arc::clone(&slots).acquire_owned().await.expect("open");
            spawned.spawn(async move {
                let output = tokio::process::Command::new("true")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0)
                    .output()
                    .await
                    .expect("true runs");
                assert!(output.status.success());
                drop(permit);
            });
        }
        while let Some(joined) = spawned.join_next().await {
            joined.expect("each spawn of `true` succeeds");
        }
    });
}

fn orch(args: &[&str], dir: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("orch runs");
    assert!(status.success(), "orch {args:?}: {status}");
}

/// `orch run` of the `TASKS` `true` commands, `CONCURRENCY` at a time.
fn orch_run(progress: &str, dir: &Path) {
    let concurrency = CONCURRENCY.to_string();
    let args = ["run", "trues.json", "--max-concurrent", &concurrency];
    orch(&[&args[..], &["--progress", progress]].concat(), dir);
}

/// Writes `trues.json` (the `TASKS` `true` commands) and `big.json` (`VALIDATE_TASKS`
/// tasks, a chain with a second, earlier dependency for every task), a task at a time:
/// this process's peak memory when it starts `orch` counts in `orch`'s peak (the kernel
/// carries it over into a child), so it stays small.
fn write_workflows(dir: &Path) {
    let write = |name: &str, id: &str, tasks: usize, dependencies: fn(usize) -> String| {
        let file = std::fs::File::create(dir.join(name)).expect("created");
        let mut out = std::io::BufWriter::new(file);
        write!(out, "{{\"workflow_id\": \"{id}\", \"tasks\": {{").expect("written");
        for i in 0..tasks {
            let comma = if i == 0 { "" } else { ",\n" };
            write!(
                out,
                "{comma}\"t{i}\": {{\"task_type\": \"command\", \"config\": {{\"program\": \"true\"}}{}}}",
                dependencies(i)
            )
            .expect("written");
        }
        write!(out, "}}}}").expect("written");
        out.flush().expect("written");
    };
    write("trues.json", "trues", TASKS, |_| String::new());
    write("big.json", "big", VALIDATE_TASKS, |i| match i {
        0 => String::new(),
        1 => ", \"dependencies\": [\"t0\"]".to_owned(),
        _ => format!(
            ", \"dependencies\": [\"t{}\", \"t{}\"]",
            i - 1,
            (i * 7919) % (i - 1)
        ),
    });
}

/// `getrusage`'s peak resident set in KiB (macOS gives it in bytes).
fn max_rss_kib(usage: &nix::sys::resource::Usage) -> u64 {
    let max_rss = usage.max_rss().max(0) as u64;
    if cfg!(target_os = "macos") {
        max_rss / 1024
    } else {
        max_rss
    }
}

/// This process's peak resident set since it started (`VmHWM`: `getrusage` would also
/// count the process it was started from, `cargo`), or `getrusage`'s where the system
/// has no `/proc`.
fn own_peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = (status.lines().find_map(|l| l.strip_prefix("VmHWM:")))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok());
    let kib =
        kib.unwrap_or_else(|| getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| max_rss_kib(&u)));
    kib * 1024
}

/// Runs case `name` `REPEATS` times and prints it as a row of `cargo xtask bench`.
fn row(name: &str, dir: &Path, runtime: &tokio::runtime::Runtime) {
    let run = |progress: &str| measure(|| orch_run(progress, dir));
    let (case, tasks, cost, who) = match name {
        "tokio-loop" => (
            format!("cli/tokio_loop/true/c{CONCURRENCY}"),
            TASKS,
            measure(|| tokio_loop(runtime)),
            UsageWho::RUSAGE_SELF,
        ),
        "run-none" => (
            format!("cli/run/true/c{CONCURRENCY}"),
            TASKS,
            run("none"),
            UsageWho::RUSAGE_CHILDREN,
        ),
        "run-lines" => (
            format!("cli/run/true/c{CONCURRENCY}/lines"),
            TASKS,
            run("lines"),
            UsageWho::RUSAGE_CHILDREN,
        ),
        "validate" => (
            "cli/validate".to_owned(),
            VALIDATE_TASKS,
            measure(|| orch(&["validate", "big.json"], dir)),
            UsageWho::RUSAGE_CHILDREN,
        ),
        other => panic!("unknown case `{other}`: tokio-loop, run-none, run-lines or validate"),
    };
    let ns = cost.wall.as_secs_f64() * 1e9;
    let peak_bytes = match who {
        UsageWho::RUSAGE_SELF => own_peak_rss_bytes(),
        _ => getrusage(who).map_or(0, |u| max_rss_kib(&u)) * 1024,
    };
    println!(
        "{{\"case\": \"{case}\", \"tasks\": {tasks}, \"ns_per_task\": {:.1}, \"tasks_per_s\": {:.0}, \"peak_rss_bytes\": {}, \"cpu_ns_per_task\": {:.1}}}",
        ns / tasks as f64,
        tasks as f64 * 1e9 / ns,
        peak_bytes,
        cost.cpu.as_secs_f64() * 1e9 / tasks as f64,
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--row") {
        let name = args.get(i + 1).map_or("", String::as_str);
        write_workflows(dir.path());
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        row(name, dir.path(), &runtime);
        return;
    }
    write_workflows(dir.path());
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let run = |progress: &'static str| {
        let dir = dir.path().to_owned();
        move || orch_run(progress, &dir)
    };
    let rows = [
        (
            format!("tokio::process loop, {TASKS} x `true`, c{CONCURRENCY}"),
            measure(|| tokio_loop(&runtime)),
        ),
        (
            format!("orch run, {TASKS} x `true`, c{CONCURRENCY}, --progress none"),
            measure(run("none")),
        ),
        (
            format!("orch run, {TASKS} x `true`, c{CONCURRENCY}, --progress lines"),
            measure(run("lines")),
        ),
        (
            format!("orch validate, {VALIDATE_TASKS} tasks (JSON)"),
            measure(|| orch(&["validate", "big.json"], dir.path())),
        ),
    ];
    println!("{:<56} {:>12} {:>12}", "what (medians)", "wall", "cpu");
    for (what, cost) in &rows {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{what:<56} {:>10.1}ms {:>10.1}ms",
            ms(cost.wall),
            ms(cost.cpu)
        );
    }
    let ratio = |row: usize, f: fn(&Cost) -> Duration| {
        f(&rows[row].1).as_secs_f64() / f(&rows[0].1).as_secs_f64()
    };
    for (name, f) in [
        ("wall", (|c: &Cost| c.wall) as fn(&Cost) -> Duration),
        ("cpu", |c: &Cost| c.cpu),
    ] {
        println!(
            "orch run / tokio loop ({name}): {:.2} (--progress none), {:.2} (--progress lines)",
            ratio(1, f),
            ratio(2, f)
        );
    }
}
