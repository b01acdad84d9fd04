//! A command's standard error: each line logged in the span of its task, the last few
//! kept for a failure's message.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest stderr line logged as one; longer ones are logged in pieces.
const MAX_LOG_LINE: usize = 8 << 10;
/// How many of the last stderr lines a failure's message quotes.
const TAIL_LINES: usize = 5;

/// The standard error of one task's command, as it is read.
pub(super) struct StderrLog {
    span: tracing::Span,
    /// What was read of a line not ended yet.
    pending: Vec<u8>,
    /// The last few lines, each cut to 200 characters.
    tail: VecDeque<String>,
}

impl StderrLog {
    pub(super) fn new(task_id: &str) -> Self {
        Self {
            span: tracing::info_span!("task", id = %task_id),
            pending: Vec::new(),
            tail: VecDeque::new(),
        }
    }

    /// Takes `bytes` read: logs each line they end, and a piece of [`MAX_LOG_LINE`] of
    /// a line longer than that.
    fn take(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(at) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + at + 1;
            log(&self.span, &mut self.tail, &self.pending[start..end]);
            start = end;
        }
        // A line of exactly the longest length waits for its line break.
        while self.pending.len() - start > MAX_LOG_LINE {
            let end = piece_end(&self.pending, start + MAX_LOG_LINE);
            log(&self.span, &mut self.tail, &self.pending[start..end]);
            start = end;
        }
        self.pending.drain(..start);
    }

    /// Logs the line left unended, and gives the last lines, joined for a message.
    pub(super) fn finish(mut self) -> String {
        if !self.pending.is_empty() {
            log(&self.span, &mut self.tail, &self.pending);
        }
        Vec::from(self.tail).join(" | ")
    }
}

/// Where a piece of a long line that would end at `end` ends: up to three bytes before,
/// where a UTF-8 character starts, so that no character is cut in two; at `end` when
/// none starts there (the text is not UTF-8).
fn piece_end(bytes: &[u8], end: usize) -> usize {
    let continues = |i: usize| bytes.get(i).is_some_and(|b| b & 0xC0 == 0x80);
    (end - 3..=end)
        .rev()
        .find(|&i| !continues(i))
        .unwrap_or(end)
}

fn log(span: &tracing::Span, tail: &mut VecDeque<String>, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    span.in_scope(|| tracing::info!(target: "orch::stderr", "{text}"));
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(text.chars().take(200).collect());
}

/// Reads `stream` into `log` until its end (or a read error); what is left of an
/// unended line stays for [`StderrLog::finish`], also when this is dropped before.
pub(super) async fn read(stream: Option<impl AsyncRead + Unpin>, log: &mut StderrLog) {
    let Some(mut stream) = stream else {
        return;
    };
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => log.take(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines logged (as their tail keeps them, uncut when short).
    fn lines_of(reads: &[&[u8]]) -> Vec<String> {
        let mut log = StderrLog::new("t");
        let mut lines = Vec::new();
        for bytes in reads {
            log.take(bytes);
            lines.extend(log.tail.drain(..));
        }
        lines.push(log.finish());
        lines
    }

    #[test]
    fn a_line_of_the_longest_length_is_one_line() {
        let long = vec![b'a'; MAX_LOG_LINE];
        let lines = lines_of(&[&long, b"\nlast"]);
        assert_eq!(
            lines.len(),
            2,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(lines[0].len(), 200, "cut for the tail");
        assert_eq!(lines[1], "last");
    }

    #[test]
    fn a_longer_line_is_logged_in_pieces_and_lines_split_across_reads_are_joined() {
        let long = vec![b'a'; MAX_LOG_LINE + 1];
        let lines = lines_of(&[&long, b"\nfir", b"st\r\nsecond\n"]);
        assert_eq!(lines[1], "a");
        assert_eq!(&lines[2..], ["first", "second", ""]);
    }

    /// A piece of a long line ends where a character starts: none is cut in two.
    #[test]
    fn a_long_line_is_cut_between_characters() {
        for before in 0..4 {
            let mut long = vec![b'a'; before];
            while long.len() < MAX_LOG_LINE + 8 {
                long.extend("é€😀".as_bytes());
            }
            let lines = lines_of(&[&long, b"\n"]);
            assert!(
                lines.iter().all(|line| !line.contains('\u{FFFD}')),
                "{before}: {lines:?}"
            );
        }
    }
}
