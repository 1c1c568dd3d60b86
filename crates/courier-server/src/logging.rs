//! The server's log output, set up once for the binary and for the benchmark harness alike, so
//! that what `make bench` measures is what runs.
//!
//! Lines are formatted on the calling thread and written by a dedicated thread through a
//! buffer, so an RPC never waits for a `write` to stderr. Nothing is dropped: when the writer
//! falls behind by [`BUFFERED_LINES`] lines, callers wait for it.

use std::io::{BufWriter, IsTerminal as _};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Environment variable holding the log filter (`EnvFilter` syntax); `info` when unset.
pub const LOG_ENV: &str = "COURIER_LOG";

/// Lines waiting for the writer thread before logging callers wait.
pub const BUFFERED_LINES: usize = 64 * 1024;

/// Installs the global subscriber: stderr, colours only on a terminal, filtered by
/// [`LOG_ENV`]. Keep the guard until exit: dropping it writes out what is still buffered.
pub fn init() -> WorkerGuard {
    let stderr = std::io::stderr();
    let ansi = stderr.is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("courier-log")
        // The writer thread flushes whenever it has written all that was queued.
        .finish(BufWriter::new(stderr));
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(writer)
        .with_ansi(ansi)
        .init();
    guard
}

pub use courier_common::Chain;
