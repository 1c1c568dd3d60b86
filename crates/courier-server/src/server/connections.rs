//! The connection limit, enforced where connections are accepted.
//!
//! [`limit`] wraps the stream of accepted sockets that tonic serves. Each connection it lets
//! through holds a permit of a semaphore inside its socket ([`Counted`]), so the permit comes back
//! when tonic drops the socket: when the connection ends, its TLS handshake fails or times out,
//! or the server stops. A connection accepted while every permit is out is closed at once with
//! `SO_LINGER` 0, so the peer gets a TCP reset (RST) before any byte of HTTP/2 (never a FIN that
//! could race with its preface, and no TIME_WAIT left on the server); a gRPC client reports
//! UNAVAILABLE. Refusals are logged at most once a second, with how many there were.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

/// At most one log line about refused connections per this period.
const LOG_PERIOD: Duration = Duration::from_secs(1);

/// Lets at most `max` connections from `incoming` be open at once; see the module's doc.
pub(crate) fn limit<S>(incoming: S, max: usize) -> Limited<S> {
    Limited {
        incoming,
        permits: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
        max,
        refusals: Refusals::default(),
    }
}

/// The accepted sockets of `S`, each holding a permit; built by [`limit`].
pub(crate) struct Limited<S> {
    incoming: S,
    permits: Arc<Semaphore>,
    max: usize,
    refusals: Refusals,
}

impl<S> Stream for Limited<S>
where
    S: Stream<Item = io::Result<TcpStream>> + Unpin,
{
    type Item = io::Result<Counted<TcpStream>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let socket = match Pin::new(&mut this.incoming).poll_next(cx) {
                Poll::Ready(Some(Ok(socket))) => socket,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    this.refusals.poll_report(cx, this.max);
                    return Poll::Pending;
                }
            };
            match Arc::clone(&this.permits).try_acquire_owned() {
                Ok(permit) => {
                    return Poll::Ready(Some(Ok(Counted {
                        io: socket,
                        _permit: permit,
                    })));
                }
                Err(_) => {
                    // The reset is sent when the socket is dropped, right here. Should the option
                    // not take, the close is a FIN instead: the client still sees UNAVAILABLE.
                    let _ = socket.set_zero_linger();
                    drop(socket);
                    this.refusals.refused(this.max);
                }
            }
        }
    }
}

/// Refused connections not logged yet, and when the last line was.
#[derive(Default)]
struct Refusals {
    unreported: u64,
    last_line: Option<Instant>,
    /// Armed while refusals wait for the next line.
    next_line: Option<Pin<Box<Sleep>>>,
}

impl Refusals {
    /// Counts one refusal; logs it now unless a line went out less than [`LOG_PERIOD`] ago.
    fn refused(&mut self, max: usize) {
        self.unreported += 1;
        match self.last_line {
            Some(last) if last.elapsed() < LOG_PERIOD => {
                if self.next_line.is_none() {
                    self.next_line = Some(Box::pin(tokio::time::sleep_until(last + LOG_PERIOD)));
                }
            }
            _ => self.report(max),
        }
    }

    /// Logs the refusals counted since the last line once its period is over.
    fn poll_report(&mut self, cx: &mut Context<'_>, max: usize) {
        if let Some(next_line) = &mut self.next_line
            && next_line.as_mut().poll(cx).is_ready()
        {
            self.report(max);
        }
    }

    fn report(&mut self, max: usize) {
        self.next_line = None;
        if self.unreported == 0 {
            return;
        }
        // At info: any client can make this happen at will.
        tracing::info!(
            refused = self.unreported,
            max_connections = max,
            "refused connections: the connection limit is reached"
        );
        self.unreported = 0;
        self.last_line = Some(Instant::now());
    }
}

/// Refusals still uncounted when the server stops accepting are logged then.
impl<S> Drop for Limited<S> {
    fn drop(&mut self) {
        self.refusals.report(self.max);
    }
}

/// An accepted connection's IO holding its permit of the connection limit until it is dropped.
/// Reads and writes go straight to `io`; its [`Connected::ConnectInfo`] is `io`'s (for a
/// `TcpStream`, tonic's `TcpConnectInfo`, also under TLS), so the middleware finds the peer.
pub(crate) struct Counted<IO> {
    io: IO,
    _permit: OwnedSemaphorePermit,
}

impl<IO: Connected> Connected for Counted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::transport::server::TcpConnectInfo;

    use super::*;

    /// A listener limited to `max` connections, and its address.
    async fn limited(max: usize) -> (Limited<TcpListenerStream>, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (limit(TcpListenerStream::new(listener), max), addr)
    }

    /// Whether the server side reset `client` (rather than leaving it open).
    async fn was_reset(client: &mut TcpStream) -> bool {
        let mut byte = [0];
        match tokio::time::timeout(Duration::from_secs(5), client.read(&mut byte)).await {
            Ok(Err(error)) => error.kind() == ErrorKind::ConnectionReset,
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    #[tokio::test]
    async fn a_connection_over_the_limit_is_reset_and_a_freed_permit_lets_the_next_in() {
        let (mut incoming, addr) = limited(1).await;
        let _first_client = TcpStream::connect(addr).await.unwrap();
        let first = incoming.next().await.unwrap().unwrap();
        assert_eq!(
            first.connect_info().remote_addr(),
            Some(_first_client.local_addr().unwrap())
        );

        // Over the limit: accepted and reset, and the stream waits for the next connection.
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(200), incoming.next()).await;
        assert!(waiting.is_err(), "a connection over the limit came through");
        assert!(was_reset(&mut refused).await);

        drop(first);
        let mut second_client = TcpStream::connect(addr).await.unwrap();
        let mut second = incoming.next().await.unwrap().unwrap();
        second_client.write_all(b"x").await.unwrap();
        let mut byte = [0];
        second.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"x");
    }

    /// The lines `run` logs, as the fmt subscriber writes them.
    fn log_lines(run: impl FnOnce()) -> Vec<String> {
        let written = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let writer = {
            let written = Arc::clone(&written);
            move || SharedWriter(Arc::clone(&written))
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let written = written.lock().unwrap();
        String::from_utf8_lossy(&written)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    struct SharedWriter(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for SharedWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_logged_at_most_once_a_second_with_their_count() {
        let mut refusals = Refusals::default();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let lines = log_lines(|| {
            // A burst: the first refusal is logged at once, the rest wait for the period's end.
            for _ in 0..5 {
                refusals.refused(2);
            }
            refusals.poll_report(&mut cx, 2);
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("refused=1 max_connections=2"),
            "{lines:?}"
        );

        tokio::time::advance(LOG_PERIOD / 2).await;
        let lines = log_lines(|| refusals.poll_report(&mut cx, 2));
        assert_eq!(lines, Vec::<String>::new());

        tokio::time::advance(LOG_PERIOD / 2).await;
        let lines = log_lines(|| {
            refusals.poll_report(&mut cx, 2);
            // Nothing new to say: no line, however long it is quiet.
            refusals.poll_report(&mut cx, 2);
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("refused=4 max_connections=2"),
            "{lines:?}"
        );
    }

    #[test]
    fn counted_sockets_keep_tonics_connect_info() {
        fn connect_info<IO: Connected<ConnectInfo = TcpConnectInfo>>() {}
        connect_info::<Counted<TcpStream>>();
    }
}
