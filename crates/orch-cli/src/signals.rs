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
        tracing::info!(
            "SIGHUP after the first signal: taken as the terminal closing, not as asking again"
        );
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
