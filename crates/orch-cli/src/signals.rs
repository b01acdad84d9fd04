//! The signals that stop `orch run` and `orch worker`: Ctrl-C, SIGTERM, a closed
//! terminal or dropped connection (SIGHUP), and SIGQUIT (Ctrl-\\), except those the
//! process was started ignoring.

use std::future::poll_fn;
use std::io;
use std::task::Poll;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The stopping signals with their numbers.
const STOPPING: [(SignalKind, u8); 4] = [
    (SignalKind::interrupt(), 2),
    (SignalKind::terminate(), 15),
    (SignalKind::hangup(), HANGUP),
    (SignalKind::quit(), 3),
];

/// Watches the stopping signals, each with its number. A signal this process was started
/// ignoring (`nohup` ignores SIGHUP, a shell's background job SIGQUIT) stays ignored:
/// watching it would replace that.
pub(crate) fn watch_stopping() -> io::Result<Vec<(Signal, u8)>> {
    let ignored = ignored_signals();
    STOPPING
        .iter()
        .filter(|&&(_, number)| ignored & (1 << (number - 1)) == 0)
        .map(|&(kind, number)| signal(kind).map(|s| (s, number)))
        .collect()
}

/// `step`'s output, or the number of the first of `signals` to arrive before it ends.
pub(crate) async fn unless_signalled<T>(
    signals: &mut [(Signal, u8)],
    step: impl Future<Output = T>,
) -> Result<T, u8> {
    tokio::select! {
        output = step => Ok(output),
        number = next(signals) => Err(number),
    }
}

/// The number of the next of `signals` to arrive.
pub(crate) async fn next(signals: &mut [(Signal, u8)]) -> u8 {
    poll_fn(|cx| {
        for (signal, number) in signals.iter_mut() {
            if let Poll::Ready(Some(())) = signal.poll_recv(cx) {
                return Poll::Ready(*number);
            }
        }
        Poll::Pending
    })
    .await
}

/// The number of the next of `signals` to arrive that asks for more than the first
/// did: any but SIGHUP. A closed terminal may send SIGHUP twice (the shell passes it on
/// to its foreground job, and the system sends it again as the shell exits), which is
/// not someone asking again.
pub(crate) async fn next_again(signals: &mut [(Signal, u8)]) -> u8 {
    loop {
        let number = next(signals).await;
        if number != HANGUP {
            return number;
        }
        log_apart(|| {
            tracing::info!(
                "SIGHUP after the first signal: taken as the terminal closing, not as asking again"
            );
        });
    }
}

/// SIGHUP's number.
const HANGUP: u8 = 1;

/// The signals this process ignores, as a mask (bit `n - 1` for signal `n`), read from
/// `/proc/self/status`; none where that cannot be read (asking the system directly
/// takes `unsafe` code, which the workspace forbids; the command's docs say so).
fn ignored_signals() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .unwrap_or(0)
}

/// Runs `watch`, what orch does on stopping signals, on a thread of its own until the
/// returned guard is dropped: a signal still works when every thread of orch's runtime
/// is stuck writing to an output nobody reads (a pager that stopped reading).
pub(crate) fn watch_apart(
    watch: impl Future<Output = ()> + Send + 'static,
) -> io::Result<WatchingApart> {
    let stop = orch::engine::CancellationToken::new();
    let stopped = stop.clone();
    let (started, start) = std::sync::mpsc::channel();
    // The runtime is made on the thread: one dropped where orch's runtime runs (if the
    // thread could not start) would panic.
    std::thread::Builder::new()
        .name("orch-signals".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let runtime = match runtime {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = started.send(Err(e));
                    return;
                }
            };
            let _ = started.send(Ok(()));
            runtime.block_on(async {
                tokio::select! {
                    () = watch => {}
                    () = stopped.cancelled() => {}
                }
            });
        })?;
    start.recv().map_err(io::Error::other)??;
    Ok(WatchingApart(stop))
}

/// Watching signals apart ([`watch_apart`]); dropping it stops that.
pub(crate) struct WatchingApart(orch::engine::CancellationToken);

impl Drop for WatchingApart {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Runs `log` (a log line) on a thread of its own, so that what a signal does next does
/// not wait for an output that is stuck. (The line may come after later ones, or not at
/// all if orch ends first.)
pub(crate) fn log_apart(log: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new().spawn(log);
}

/// Ends orch with exit code `code`, after writing `lines` to standard error if that takes
/// at most a moment (standard error may be stuck: orch ends regardless).
pub(crate) fn exit_saying(lines: Vec<String>, code: i32) -> ! {
    let (written, wait) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new().spawn(move || {
        for line in lines {
            errln!("{line}");
        }
        let _ = written.send(());
    });
    let _ = wait.recv_timeout(std::time::Duration::from_millis(500));
    std::process::exit(code)
}
