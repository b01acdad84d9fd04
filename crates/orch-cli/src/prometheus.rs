//! `--metrics-addr`: the running engine's metrics in Prometheus' text format, served over
//! plain HTTP on `GET /metrics` while the run lasts.
//!
//! A minimal HTTP/1.1 responder: it reads a request head (at most 8 KiB, within 5 s),
//! answers `GET /metrics` (and `GET /`) with the metrics, another path with 404 and
//! another method with 405, and closes the connection. Enough for a Prometheus scraper or `curl`; no keep-alive, no TLS.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use orch::core::{EngineEvent, EngineEventKind};
use orch::metrics::{DURATION_BUCKETS, Recorder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::tally::Tally;

/// The largest request head read.
const MAX_HEAD: usize = 8 << 10;
/// How long a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take its reply: one that does not read it gives its place
/// up to others then.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the metrics are made of, updated from the run's events.
pub(crate) struct Live {
    workflow_id: String,
    /// When the run started (its `WorkflowStarted` event): not when orch did, which
    /// may have read a long journal first.
    started: std::sync::OnceLock<Instant>,
    tally: Mutex<Tally>,
    recorder: Recorder,
}

impl Live {
    pub(crate) fn new(workflow_id: &str, total: usize) -> Self {
        Self {
            workflow_id: workflow_id.to_owned(),
            started: std::sync::OnceLock::new(),
            tally: Mutex::new(Tally::new(total)),
            recorder: Recorder::new(),
        }
    }

    /// Takes one lifecycle event into account.
    pub(crate) fn observe(&self, event: &EngineEvent) {
        self.recorder.observe(event);
        if event.kind == EngineEventKind::WorkflowStarted {
            let _ = self.started.set(Instant::now());
        }
        // The task counts are of the workflow's tasks, not of a map's instances.
        if event.map_item.is_none() {
            self.tally
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .apply(event);
        }
    }

    /// The metrics in Prometheus' text exposition format (version 0.0.4).
    pub(crate) fn render(&self) -> String {
        let tally = self
            .tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let workflow = label(&self.workflow_id);
        let mut text = String::new();
        let mut line = |s: String| {
            text.push_str(&s);
            text.push('\n');
        };
        line("# HELP orch_run_tasks Tasks of the run, by state.".into());
        line("# TYPE orch_run_tasks gauge".into());
        for (state, count) in [
            ("pending", tally.pending()),
            ("running", tally.running.len()),
            ("completed", tally.completed),
            ("failed", tally.failed),
            ("skipped", tally.skipped),
            ("cancelled", tally.cancelled),
        ] {
            line(format!(
                "orch_run_tasks{{workflow_id=\"{workflow}\",state=\"{state}\"}} {count}"
            ));
        }
        line("# HELP orch_run_elapsed_seconds Time since the run started (0 before).".into());
        line("# TYPE orch_run_elapsed_seconds gauge".into());
        let elapsed = self
            .started
            .get()
            .map_or(0.0, |at| at.elapsed().as_secs_f64());
        line(format!(
            "orch_run_elapsed_seconds{{workflow_id=\"{workflow}\"}} {elapsed}"
        ));
        let stats = self.recorder.snapshot();
        line("# HELP orch_tasks_total Tasks of the run by task type and outcome.".into());
        line("# TYPE orch_tasks_total counter".into());
        for (task_type, s) in &stats {
            let task_type = label(task_type);
            for (outcome, count) in [
                ("started", s.started),
                ("completed", s.completed),
                ("failed", s.failed),
                ("retried", s.retried),
                ("skipped", s.skipped),
                ("cancelled", s.cancelled),
            ] {
                line(format!(
                    "orch_tasks_total{{task_type=\"{task_type}\",outcome=\"{outcome}\"}} {count}"
                ));
            }
        }
        line(
            "# HELP orch_task_duration_seconds Durations of the tasks that completed or failed."
                .into(),
        );
        line("# TYPE orch_task_duration_seconds histogram".into());
        for (task_type, s) in &stats {
            let task_type = label(task_type);
            let mut cumulative = 0;
            for (bound, count) in DURATION_BUCKETS.iter().zip(s.durations.counts) {
                cumulative += count;
                line(format!(
                    "orch_task_duration_seconds_bucket{{task_type=\"{task_type}\",le=\"{bound}\"}} {cumulative}"
                ));
            }
            let h = &s.durations;
            line(format!(
                "orch_task_duration_seconds_bucket{{task_type=\"{task_type}\",le=\"+Inf\"}} {}",
                h.count
            ));
            line(format!(
                "orch_task_duration_seconds_sum{{task_type=\"{task_type}\"}} {}",
                h.sum.as_secs_f64()
            ));
            line(format!(
                "orch_task_duration_seconds_count{{task_type=\"{task_type}\"}} {}",
                h.count
            ));
        }
        text
    }
}

/// A label value with `\`, `"` and line feeds escaped.
fn label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The most connections answered at once; more wait in the listener's queue, so that
/// clients cannot take all of orch's file descriptors (its commands need them).
const MAX_CONNECTIONS: usize = 64;

/// Serves `live` on `listener` until the returned task is aborted.
pub(crate) fn serve(listener: TcpListener, live: Arc<Live>) -> tokio::task::JoinHandle<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            // (An error only from a closed semaphore, which this one never is.)
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!(%error, "the metrics server cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let live = Arc::clone(&live);
            tokio::spawn(async move {
                if let Err(error) = respond(stream, &live).await {
                    tracing::debug!(%error, "metrics request failed");
                }
                drop(slot);
            });
        }
    })
}

/// Whether `head` holds a whole request head: an empty line, after `\r\n` or after a bare
/// `\n` (which HTTP lets a server take as a line's end).
fn head_ended(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

async fn respond(mut stream: TcpStream, live: &Live) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = async {
        while !head_ended(&head) && head.len() < MAX_HEAD {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(READ_TIMEOUT, read).await.is_err() {
        return Ok(());
    }
    let request = String::from_utf8_lossy(&head);
    let mut words = request
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace();
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let (status, content_type, body) = match (method, path.split('?').next()) {
        ("GET", Some("/metrics" | "/")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            live.render(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        ),
    };
    let mut response = String::new();
    let _ = write!(
        response,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    reply(&mut stream, response.as_bytes()).await
}

/// Writes `response` to `stream` and closes it, unless the client takes longer than
/// [`WRITE_TIMEOUT`] to read it.
async fn reply(stream: &mut TcpStream, response: &[u8]) -> std::io::Result<()> {
    let write = async {
        stream.write_all(response).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not read its reply",
            ))
        })
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use orch::core::EngineEventKind;

    use super::*;

    /// A client that sends its request and never reads the reply holds its connection
    /// (one of a few) only until the write times out.
    #[tokio::test(start_paused = true)]
    async fn a_reply_the_client_does_not_read_is_given_up() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let client = TcpStream::connect(listener.local_addr().expect("an address"));
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (_client, (mut server_side, _)) =
            (client.expect("connects"), accepted.expect("accepts"));
        // More than the two ends' socket buffers hold.
        let response = vec![b'x'; 64 << 20];
        let replying = reply(&mut server_side, &response);
        let replied = tokio::time::timeout(WRITE_TIMEOUT * 2, replying).await;
        let error = replied
            .expect("given up by then")
            .expect_err("the client read nothing");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        let live = Live::new("w\"1", 2);
        let mut event = EngineEvent::new(
            EngineEventKind::TaskStarted,
            "w".into(),
            orch::core::RunId::new(),
            SystemTime::now(),
        );
        event.task_id = Some("a".into());
        event.task_type = Some("command".into());
        live.observe(&event);
        event.kind = EngineEventKind::TaskCompleted;
        event.duration = Some(Duration::from_millis(3));
        live.observe(&event);
        let text = live.render();
        assert!(
            text.contains("orch_run_tasks{workflow_id=\"w\\\"1\",state=\"completed\"} 1"),
            "{text}"
        );
        assert!(text.contains("orch_tasks_total{task_type=\"command\",outcome=\"completed\"} 1"));
        assert!(
            text.contains(
                "orch_task_duration_seconds_bucket{task_type=\"command\",le=\"0.005\"} 1"
            )
        );
        assert!(
            text.contains(
                "orch_task_duration_seconds_bucket{task_type=\"command\",le=\"0.0025\"} 0"
            )
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("name and value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    /// The run's time counts from its start, not from orch's (which may have read a
    /// long journal first).
    #[test]
    fn the_elapsed_time_counts_from_the_runs_start() {
        let live = Live::new("w", 1);
        std::thread::sleep(Duration::from_millis(2));
        let elapsed = |live: &Live| {
            let text = live.render();
            let line = (text.lines())
                .find(|l| l.starts_with("orch_run_elapsed_seconds{"))
                .expect("the elapsed time")
                .to_owned();
            let (_, value) = line.rsplit_once(' ').expect("name and value");
            value.parse::<f64>().expect("a number")
        };
        assert_eq!(elapsed(&live), 0.0, "not started");
        let start = EngineEvent::new(
            EngineEventKind::WorkflowStarted,
            "w".into(),
            orch::core::RunId::new(),
            SystemTime::now(),
        );
        live.observe(&start);
        std::thread::sleep(Duration::from_millis(2));
        assert!(elapsed(&live) >= 0.002);
    }

    #[test]
    fn task_counts_leave_out_map_instances_and_count_restored_tasks() {
        let live = Live::new("w", 3);
        let event = |kind, id: &str, item: Option<u32>| {
            let mut event = EngineEvent::new(
                kind,
                "w".into(),
                orch::core::RunId::new(),
                SystemTime::now(),
            );
            event.task_id = Some(id.into());
            event.map_item = item;
            event
        };
        live.observe(&event(EngineEventKind::TaskRestored, "a", None));
        for item in 0..3 {
            let id = format!("m[{item}]");
            live.observe(&event(EngineEventKind::TaskStarted, &id, Some(item)));
            live.observe(&event(EngineEventKind::TaskCompleted, &id, Some(item)));
        }
        live.observe(&event(EngineEventKind::TaskStarted, "m", None));
        let text = live.render();
        let count = |state: &str| {
            let name = format!("orch_run_tasks{{workflow_id=\"w\",state=\"{state}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(name.as_str()))
                .unwrap_or_else(|| panic!("{state}: {text}"))
                .to_owned()
        };
        assert_eq!(
            (count("completed"), count("running"), count("pending")),
            ("1".to_owned(), "1".to_owned(), "1".to_owned())
        );
    }
}
