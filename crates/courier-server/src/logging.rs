//! The server's log output, set up once for the binary and for the benchmark harness alike, so
//! that what `make bench` measures is what runs.
//!
//! Lines are formatted on the calling thread and handed to a dedicated writer thread through a
//! buffer of at most [`BUFFERED_LINES`] lines, so a call never waits on stderr. When the writer
//! falls that far behind (stderr is blocked, or slower than the lines coming in), new lines are
//! dropped and counted rather than making callers wait; every [`DROP_REPORT_INTERVAL`] in which
//! lines were dropped ends with a warning, `dropped N log lines`, itself subject to the same
//! buffer.
//!
//! Values a client controls (the method path, its request id) go into the log through
//! [`Capped`]: at most [`MAX_LOGGED`] bytes of each.

use std::fmt;
use std::io::{BufWriter, IsTerminal as _, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::Dispatch;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Environment variable holding the log filter (`EnvFilter` syntax); [`DEFAULT_FILTER`] when
/// unset.
pub const LOG_ENV: &str = "COURIER_LOG";

/// The log filter when [`LOG_ENV`] is unset: info, but only errors from rustls, whose warnings
/// (reaching this log through the `log` bridge) any client can cause at will with a bad TLS
/// handshake, some quoting what it sent (an illegal SNI name).
pub const DEFAULT_FILTER: &str = "info,rustls=error";

/// Lines waiting for the writer thread before further lines are dropped.
pub const BUFFERED_LINES: usize = 64 * 1024;

/// How often dropped lines are reported, while lines are being dropped.
pub const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Longest value from a client that goes into the log, in bytes; see [`Capped`].
pub const MAX_LOGGED: usize = 128;

/// Installs the global subscriber: stderr, colours only on a terminal, filtered by
/// [`LOG_ENV`]. Keep the guard until exit: dropping it reports lines dropped since the last
/// report and writes out what is still buffered.
pub fn init() -> LogGuard {
    let stderr = std::io::stderr();
    let ansi = stderr.is_terminal();
    // The writer thread flushes whenever it has written all that was queued.
    let (writer, guard) = non_blocking(BufWriter::new(stderr), BUFFERED_LINES);
    let dropped = writer.error_counter();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)),
        )
        .with_writer(writer)
        .with_ansi(ansi)
        .init();
    let global = tracing::dispatcher::get_default(Dispatch::clone);
    LogGuard::new(guard, dropped, global, DROP_REPORT_INTERVAL)
}

/// A writer that hands lines to a thread writing them to `sink`, dropping (and counting, see
/// [`NonBlocking::error_counter`]) those that find `buffered_lines` already waiting.
fn non_blocking<W: Write + Send + 'static>(
    sink: W,
    buffered_lines: usize,
) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(buffered_lines)
        .thread_name("courier-log")
        .finish(sink)
}

/// Keeps the log writer and the reporter of dropped lines running; returned by [`init`].
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    reporter: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    /// Dropped after the reporter has made its last report, so that report is written too.
    _writer: WorkerGuard,
}

impl LogGuard {
    /// Starts a thread that logs, through `dispatch`, how many lines `dropped` counted in each
    /// `interval` that had any.
    fn new(
        writer: WorkerGuard,
        dropped: ErrorCounter,
        dispatch: Dispatch,
        interval: Duration,
    ) -> Self {
        let (stop, stopped) = mpsc::channel();
        let reporter = std::thread::Builder::new()
            .name("courier-log-drops".into())
            .spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    report_drops(&dropped, &stopped, interval);
                });
            })
            .expect("cannot start the thread reporting dropped log lines");
        Self {
            reporter: Some((stop, reporter)),
            _writer: writer,
        }
    }
}

impl fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogGuard").finish_non_exhaustive()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some((stop, reporter)) = self.reporter.take() {
            drop(stop);
            let _ = reporter.join();
        }
    }
}

/// Reports lines dropped since the last report every `interval` that had any, and once more
/// when `stop` is dropped.
fn report_drops(dropped: &ErrorCounter, stop: &mpsc::Receiver<()>, interval: Duration) {
    let mut reported = 0;
    loop {
        let stopping = !matches!(
            stop.recv_timeout(interval),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        let total = dropped.dropped_lines();
        if total > reported {
            // A warning: lost lines are the operator's problem (stderr cannot keep up), and at
            // most one such line goes out per interval.
            tracing::warn!(
                dropped = total - reported,
                total,
                "dropped {} log lines since the last report: the log output cannot keep up",
                total - reported
            );
            reported = total;
        }
        if stopping {
            return;
        }
    }
}

/// A value from a client (a method path, a request id) as it goes into the log: at most its
/// first [`MAX_LOGGED`] bytes, then, if it is longer, `…` and its whole length in bytes. Such
/// values are otherwise bounded only by the header-list limit (16 KiB by default).
#[derive(Clone, Copy, Debug)]
pub struct Capped<'a>(pub &'a str);

impl fmt::Display for Capped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self(value) = *self;
        if value.len() <= MAX_LOGGED {
            return f.write_str(value);
        }
        let mut cut = MAX_LOGGED;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        write!(f, "{}…({} bytes)", &value[..cut], value.len())
    }
}

pub use courier_common::Chain;

#[cfg(test)]
pub(crate) mod capture {
    //! A subscriber that keeps what it logs, for tests of what is logged and how.

    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    /// Keeps a second dispatcher registered for good. With only one registered, tracing
    /// decides whether a call site is of interest by the default dispatcher of the thread that
    /// reaches it first, and remembers that for every thread: a test thread's subscriber would
    /// miss call sites another test's thread (with no subscriber) reached first.
    fn keep_interest_per_thread() {
        static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    }

    /// Everything a [`subscriber`] wrote.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// What was logged so far.
        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// A subscriber formatting like the server's, without colours, filtered by `filter`
    /// (`EnvFilter` syntax), and what it writes. Set it as the default of a test's thread.
    pub(crate) fn subscriber(filter: &str) -> (impl tracing::Subscriber + Send + Sync, Captured) {
        keep_interest_per_thread();
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(captured.clone())
            .with_ansi(false)
            .finish();
        (subscriber, captured)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Instant;

    use super::capture::Captured;
    use super::*;

    /// A log output that takes nothing until it is opened, as a full pipe nobody reads.
    #[derive(Clone, Default)]
    struct Stuck {
        open: Arc<(Mutex<bool>, Condvar)>,
        out: Captured,
    }

    impl Stuck {
        fn open(&self) {
            let (open, opened) = &*self.open;
            *open.lock().unwrap() = true;
            opened.notify_all();
        }
    }

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, opened) = &*self.open;
            let _open = opened.wait_while(open.lock().unwrap(), |open| !*open);
            self.out.write(buf)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_costs_callers_dropped_lines_never_waiting() {
        const LINES: usize = 10_000;
        let output = Stuck::default();
        let (writer, worker) = non_blocking(output.clone(), 16);
        let dropped = writer.error_counter();
        let dispatch = Dispatch::new(
            tracing_subscriber::fmt()
                .with_writer(writer)
                .with_ansi(false)
                .finish(),
        );
        let guard = LogGuard::new(
            worker,
            dropped.clone(),
            dispatch.clone(),
            Duration::from_millis(50),
        );
        let (done, finished) = mpsc::channel();
        let logging = std::thread::spawn(move || {
            let started = Instant::now();
            tracing::dispatcher::with_default(&dispatch, || {
                for line in 0..LINES {
                    tracing::info!(line, "a line nobody reads");
                }
            });
            let _ = done.send(started.elapsed());
        });
        let outcome = finished.recv_timeout(Duration::from_secs(10));
        // Whatever happened, let the writer (and a caller stuck behind it) go.
        output.open();
        let took = outcome.expect("logging calls waited on the stuck output for 10 s");
        logging.join().unwrap();
        assert!(took < Duration::from_secs(2), "{took:?}");
        // The writer thread holds one line and the buffer 16; every other line is dropped.
        assert!(
            dropped.dropped_lines() >= LINES - 17,
            "{}",
            dropped.dropped_lines()
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while !output
            .out
            .text()
            .contains("log lines since the last report")
        {
            assert!(Instant::now() < deadline, "{}", output.out.text());
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(guard);
        let log = output.out.text();
        assert!(log.contains("a line nobody reads"), "{log}");
        assert!(
            log.contains(&format!("WARN {}", module_path!().replace("::tests", "")))
                && log.contains("log lines since the last report: the log output cannot keep up"),
            "{log}"
        );
    }

    #[test]
    fn by_default_clients_cannot_make_rustls_warn() {
        let filtered = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(DEFAULT_FILTER))
            .finish();
        tracing::subscriber::with_default(filtered, || {
            assert!(!tracing::enabled!(target: "rustls::msgs::handshake", tracing::Level::WARN));
            assert!(tracing::enabled!(target: "rustls::common_state", tracing::Level::ERROR));
            assert!(tracing::enabled!(target: "courier_server::server", tracing::Level::INFO));
            assert!(!tracing::enabled!(target: "courier_server::server", tracing::Level::DEBUG));
        });
    }

    #[test]
    fn capped_values_keep_their_start_and_tell_their_length() {
        assert_eq!(Capped("short").to_string(), "short");
        let exact = "x".repeat(MAX_LOGGED);
        assert_eq!(Capped(&exact).to_string(), exact);
        let long = format!("{}é{}", "x".repeat(MAX_LOGGED - 1), "y".repeat(100));
        assert_eq!(
            Capped(&long).to_string(),
            format!("{}…({} bytes)", "x".repeat(MAX_LOGGED - 1), long.len())
        );
    }
}
