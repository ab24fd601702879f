//! The access log (`--access-log -|FILE`): one JSON line per request proxied, tagged with
//! its version and route, written when its response has ended (so with the whole
//! duration, and gRPC's status from the trailers) by a thread of its own, so a request
//! never waits on the disk.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

/// Lines waiting to be written, at most; past it, lines are dropped (and counted), never
/// a request slowed.
const QUEUED: usize = 65_536;

/// Where the lines go.
#[derive(Clone, Debug)]
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

/// One request's line, written once its response has ended.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) log: AccessLog,
    pub(crate) start: Instant,
    pub(crate) time: f64,
    pub(crate) client: Option<String>,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) status: u16,
    /// From the response's head (a trailers-only gRPC answer); the trailers' wins.
    pub(crate) grpc_status: Option<u32>,
    pub(crate) version: Option<String>,
    pub(crate) route: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) retried: bool,
}

/// The `grpc-status` in `headers`, if any.
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
}

impl Record {
    /// Writes the line: the response has ended, with `trailers` if it had any.
    pub(crate) fn finish(self, trailers: Option<&HeaderMap>) {
        let grpc_status = trailers.and_then(grpc_status).or(self.grpc_status);
        self.log.write(&serde_json::json!({
            "time": self.time,
            "client": self.client,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "grpc_status": grpc_status,
            "version": self.version,
            "route": self.route,
            "endpoint": self.endpoint,
            "duration_ms": self.start.elapsed().as_secs_f64() * 1000.0,
            "retried": self.retried,
        }));
    }
}
