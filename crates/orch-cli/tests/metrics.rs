//! `orch run --metrics-addr`: Prometheus metrics scraped over loopback HTTP while the run
//! is in progress.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::mpsc;

use common::{Dir, orch, wait_for};

/// `GET path` on `addr`; the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    )
}

/// Sends `head` to `addr`; the status line and the body of the answer.
fn request(addr: &str, head: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connected");
    stream.write_all(head.as_bytes()).expect("sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("an answer");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or_default().to_owned();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|l| l.parse::<usize>().ok());
    assert_eq!(length, Some(body.len()), "{head}");
    (status, body.to_owned())
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Starts `orch run --metrics-addr 127.0.0.1:0` in `dir` on a workflow whose task `hold`
/// runs until a file `go` appears; orch and the address it serves metrics on.
fn serving_a_held_run(dir: &Dir) -> (std::process::Child, String) {
    dir.write(
        "m.yaml",
        "workflow_id: m\ntasks:\n  quick: { task_type: echo }\n  hold: { task_type: command, timeout: 120, dependencies: [quick], config: { shell: true, script: 'while [ ! -e go ]; do sleep 0.02; done' } }\n  last: { task_type: echo, dependencies: [hold] }\n",
    );
    let mut child = orch()
        .args([
            "run",
            "m.yaml",
            "--metrics-addr",
            "127.0.0.1:0",
            "--progress",
            "none",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orch starts");
    let stderr = child.stderr.take().expect("piped");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let addr = loop {
        let line = received
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("orch logs where it serves metrics");
        if let Some((_, rest)) = line.split_once("serving metrics on http://") {
            break rest.trim_end_matches("/metrics").to_owned();
        }
    };
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    (child, addr)
}

#[test]
fn metrics_are_served_over_http_while_the_run_lasts() {
    let dir = Dir::new();
    let (mut child, addr) = serving_a_held_run(&dir);

    let running = "orch_run_tasks{workflow_id=\"m\",state=\"running\"}";
    let completed = "orch_run_tasks{workflow_id=\"m\",state=\"completed\"}";
    let mut body = String::new();
    wait_for("the held task to be running", || {
        let (status, text) = get(&addr, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        body = text;
        sample(&body, running) == Some(1.0) && sample(&body, completed) == Some(1.0)
    });
    assert_eq!(
        sample(&body, "orch_run_tasks{workflow_id=\"m\",state=\"pending\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "orch_tasks_total{task_type=\"echo\",outcome=\"completed\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "orch_tasks_total{task_type=\"command\",outcome=\"started\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "orch_task_duration_seconds_count{task_type=\"echo\"}"
        ),
        Some(1.0)
    );
    assert!(body.contains("# TYPE orch_task_duration_seconds histogram"));
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("a series and a value");
        assert!(
            series.starts_with("orch_") && value.parse::<f64>().is_ok(),
            "{line}"
        );
    }
    let (status, _) = get(&addr, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    // Lines may end in a bare line feed (as HTTP lets a server accept).
    let (status, _) = request(&addr, "GET /metrics HTTP/1.1\nHost: orch\n\n");
    assert_eq!(status, "HTTP/1.1 200 OK");

    std::fs::write(dir.join("go"), "").expect("released");
    let status = child.wait().expect("orch ends");
    assert_eq!(status.code(), Some(0));
    assert!(
        TcpStream::connect(&addr).is_err(),
        "the server stops with the run"
    );
}

#[test]
fn an_address_in_use_is_a_clear_setup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("an address").to_string();
    let dir = Dir::new();
    dir.write("w.yaml", "workflow_id: w\ntasks:\n  a: { task_type: command, config: { program: touch, args: [ran] } }\n");
    let mut command = orch();
    command
        .args(["run", "w.yaml", "--metrics-addr", &addr])
        .current_dir(dir.path());
    let output = common::output(command);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr} for --metrics-addr")),
        "{stderr}"
    );
    assert!(
        !dir.join("ran").exists(),
        "nothing runs when the run cannot be set up"
    );
}

/// Connections that send nothing hold at most a bounded number of orch's file
/// descriptors (each is dropped after a few seconds): a client cannot use them all up
/// and starve the run's commands of pipes.
#[test]
fn idle_metrics_connections_hold_a_bounded_number_of_file_descriptors() {
    let dir = Dir::new();
    let (mut child, addr) = serving_a_held_run(&dir);
    let open_fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", child.id()))
            .expect("orch's descriptors")
            .count()
    };
    // Counted once the run is under way, with everything it holds throughout open.
    let running = "orch_run_tasks{workflow_id=\"m\",state=\"running\"}";
    wait_for("the held task to be running", || {
        sample(&get(&addr, "/metrics").1, running) == Some(1.0)
    });
    let before = open_fds();
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(&addr).expect("connected"))
        .collect();
    wait_for("orch to take connections", || open_fds() >= before + 60);
    // Time to take the rest, if it would.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let held = open_fds() - before;
    assert!(
        held <= 70,
        "{held} descriptors held by 200 idle connections"
    );
    // The server still answers once idle connections are dropped.
    drop(idle);
    let (status, _) = get(&addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    std::fs::write(dir.join("go"), "").expect("released");
    assert_eq!(child.wait().expect("orch ends").code(), Some(0));
}
