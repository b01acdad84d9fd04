//! A worker process for orch-nats's tests: serves task types `slow` and `noop`, appends
//! what it does to a side file, and stops gracefully when its standard input closes.
//!
//! Arguments: `URL NAME SIDE_FILE ACK_WAIT_MS MAX_DELIVER SHUTDOWN_GRACE_MS`.
//!
//! `slow` sleeps `config.ms` milliseconds when the worker's name starts with
//! `config.slow_on` (every worker when that is absent), and returns the worker's name.
//! Each call appends `start <task> <attempt> <worker>` and, once done, `done <task>
//! <attempt> <worker>` to the side file.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orch_engine::{TaskContext, TaskError};
use orch_nats::{Layout, NatsConfig, Worker};
use tokio_util::sync::CancellationToken;

/// The side file and the worker's name, for handlers.
struct Side {
    path: PathBuf,
    name: String,
}

impl Side {
    fn note(&self, what: &str, ctx: &TaskContext) {
        let line = format!("{what} {} {} {}\n", ctx.task_id(), ctx.attempt(), self.name);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .expect("open the side file");
        file.write_all(line.as_bytes())
            .expect("append to the side file");
    }
}

async fn slow(ctx: TaskContext) -> Result<String, TaskError> {
    let side = ctx.state::<Arc<Side>>()?;
    side.note("start", &ctx);
    let ms = ctx.config()["ms"].as_u64().unwrap_or(0);
    let slow_here = ctx.config()["slow_on"]
        .as_str()
        .is_none_or(|prefix| side.name.starts_with(prefix));
    if slow_here {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    side.note("done", &ctx);
    Ok(side.name.clone())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, name, side, ack_wait, max_deliver, grace] = args.as_slice() else {
        eprintln!("usage: URL NAME SIDE_FILE ACK_WAIT_MS MAX_DELIVER SHUTDOWN_GRACE_MS");
        std::process::exit(2);
    };
    let ms = |text: &str| Duration::from_millis(text.parse().expect("a number of milliseconds"));
    let layout = Layout {
        ack_wait: ms(ack_wait),
        max_deliver: max_deliver.parse().expect("a number"),
        ..Layout::default()
    };
    let side = Arc::new(Side {
        path: side.into(),
        name: name.clone(),
    });
    let worker = Worker::builder()
        .name(name.clone())
        .layout(layout)
        .state(side)
        .concurrency(4)
        .shutdown_grace(ms(grace))
        .handler("slow", slow)
        .handler(
            "noop",
            |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) },
        )
        .connect(&NatsConfig::new(url.clone()))
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    let on_eof = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        on_eof.cancel();
    });
    println!("ready");
    worker.run(stop).await;
}
