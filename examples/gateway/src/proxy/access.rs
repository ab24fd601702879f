//! The access log (`--access-log -|FILE`): one JSON line per request proxied, tagged with
//! its version and route, written by a thread of its own so a request never waits on
//! the disk.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines waiting to be written, at most; past it, lines are dropped (and counted), never
/// a request slowed.
const QUEUED: usize = 65_536;

/// Where the lines go.
#[derive(Debug)]
pub(crate) struct AccessLog {
    lines: SyncSender<String>,
}

impl AccessLog {
    /// `-` for standard output, else a file appended to (made if missing).
    pub(crate) fn open(target: &str) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            "-" => Box::new(std::io::stdout()),
            path => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (lines, queue) = sync_channel(QUEUED);
        std::thread::Builder::new()
            .name("access-log".to_owned())
            .spawn(move || write_lines(&queue, out))?;
        Ok(Self { lines })
    }

    /// Queues one request's line.
    pub(crate) fn write(&self, line: &serde_json::Value) {
        if let Err(TrySendError::Full(_)) = self.lines.try_send(line.to_string()) {
            tracing::debug!("access log: {QUEUED} lines waiting, one dropped");
        }
    }
}

/// Writes lines as they come, flushing whenever none is waiting; ends when the log is
/// dropped.
fn write_lines(queue: &Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(out);
    while let Ok(line) = queue.recv() {
        let mut next = Some(line);
        while let Some(line) = next {
            if writeln!(out, "{line}").is_err() {
                return;
            }
            next = queue.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
}

/// Now, as seconds since the epoch with milliseconds.
pub(crate) fn now() -> f64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (since.as_millis() as f64) / 1000.0
}
