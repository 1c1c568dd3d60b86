//! The call's deadline: [`CallTimeoutLayer`] cuts a call off when it passes, and
//! [`WellFormedDeadline`] refuses a malformed `grpc-timeout` with INVALID_ARGUMENT instead of
//! ignoring it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tonic::Status;
use tower::{Layer, Service};
use tower_http::validate_request::ValidateRequest;

/// What a call cut off by its deadline is told: tonic's own words and code for it.
pub const TIMED_OUT: &str = "Timeout expired";

/// How much earlier than tonic's own timer this layer ends a call with a client deadline, so
/// that its answer (translated for gRPC-Web, with CORS) is the one sent.
pub const AHEAD_OF_TONIC: Duration = Duration::from_millis(5);

/// Cuts a call off with CANCELLED ("Timeout expired") unless its response has started within
/// the shorter of `--call-timeout` and the client's `grpc-timeout`; a response stream only has
/// to start in time.
///
/// tonic's `Server::timeout` does the same, but outside every layer of `Server::layer`: its
/// answer would skip the gRPC-Web translation and CORS (a browser would see a gRPC response it
/// cannot read, or none at all). This one sits inside them. tonic still reads `grpc-timeout`
/// with a timer of its own, outside, made when tonic calls the layers; on the gRPC-Web path
/// this layer is called later (when the translation first polls it), so its timer for the same
/// deadline could land one millisecond tick after tonic's and lose the race (seen under load).
/// A client's deadline is therefore cut [`AHEAD_OF_TONIC`] early here: the client is about to
/// give up anyway, and the answer it gets is one it can read.
#[derive(Clone, Copy, Debug)]
pub struct CallTimeoutLayer {
    call_timeout: Duration,
}

impl CallTimeoutLayer {
    /// Calls get at most `call_timeout`, or the client's shorter deadline.
    pub fn new(call_timeout: Duration) -> Self {
        Self { call_timeout }
    }
}

impl<S> Layer<S> for CallTimeoutLayer {
    type Service = CallTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallTimeout {
            inner,
            call_timeout: self.call_timeout,
        }
    }
}

/// The service of [`CallTimeoutLayer`].
#[derive(Clone, Debug)]
pub struct CallTimeout<S> {
    inner: S,
    call_timeout: Duration,
}

impl<S, B, ResBody> Service<Request<B>> for CallTimeout<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<TimeoutBody<ResBody>>;
    type Error = S::Error;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // A malformed value is refused inside (`WellFormedDeadline`); here it counts as none.
        let timeout = match request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| grpc_timeout(value.as_bytes()))
        {
            Some(client) => client.saturating_sub(AHEAD_OF_TONIC).min(self.call_timeout),
            None => self.call_timeout,
        };
        // The timer is made here, in `call`, not when first polled: see the layer's doc.
        TimeoutFuture {
            sleep: tokio::time::sleep(timeout),
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The response future of [`CallTimeout`].
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
    }
}

impl<F, B, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TimeoutBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(outcome) = this.inner.poll(cx) {
            return Poll::Ready(
                outcome.map(|response| response.map(|inner| TimeoutBody { inner: Some(inner) })),
            );
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => {
                let (parts, ()) = Status::cancelled(TIMED_OUT).into_http::<()>().into_parts();
                Poll::Ready(Ok(Response::from_parts(parts, TimeoutBody { inner: None })))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

pin_project! {
    /// The response body of [`CallTimeout`]: the call's, or none for a call cut off.
    pub struct TimeoutBody<B> {
        #[pin]
        inner: Option<B>,
    }
}

impl<B: Body> Body for TimeoutBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().inner.as_pin_mut() {
            Some(inner) => inner.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// The duration of a well-formed `grpc-timeout` value (see [`is_grpc_timeout`]).
fn grpc_timeout(value: &[u8]) -> Option<Duration> {
    if !is_grpc_timeout(value) {
        return None;
    }
    let (unit, digits) = value.split_last()?;
    // At most 8 digits: no overflow, and no hour count that `Duration` cannot hold.
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 60 * 60),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        _ => Duration::from_nanos(amount),
    })
}

/// Refuses a malformed `grpc-timeout`, which tonic would otherwise ignore silently: the client
/// meant a deadline, and should learn that it has none.
#[derive(Clone, Copy, Debug, Default)]
pub struct WellFormedDeadline;

/// Whether `value` is a gRPC timeout: 1 to 8 digits and a unit (H, M, S, m, u, n).
fn is_grpc_timeout(value: &[u8]) -> bool {
    match value.split_last() {
        Some((unit, digits)) => {
            b"HMSmun".contains(unit)
                && (1..=8).contains(&digits.len())
                && digits.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

impl<B> ValidateRequest<B> for WellFormedDeadline {
    type ResponseBody = tonic::body::Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Self::ResponseBody>> {
        match request.headers().get("grpc-timeout") {
            Some(value) if !is_grpc_timeout(value.as_bytes()) => {
                let status = Status::invalid_argument(
                    "grpc-timeout: expected 1 to 8 digits and a unit (H, M, S, m, u, n)",
                );
                Err(status.into_http())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_digits_and_a_unit() {
        for good in ["1S", "100m", "99999999n", "5H"] {
            assert!(is_grpc_timeout(good.as_bytes()), "{good}");
        }
        for bad in ["", "S", "soon", "123456789S", "10s", "1.5S", "-1S"] {
            assert!(!is_grpc_timeout(bad.as_bytes()), "{bad}");
            assert_eq!(grpc_timeout(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn each_unit_is_read_as_grpc_means_it() {
        for (value, duration) in [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("4S", Duration::from_secs(4)),
            ("5m", Duration::from_millis(5)),
            ("6u", Duration::from_micros(6)),
            ("7n", Duration::from_nanos(7)),
            ("99999999H", Duration::from_secs(99_999_999 * 3600)),
        ] {
            assert_eq!(grpc_timeout(value.as_bytes()), Some(duration), "{value}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_is_cancelled_and_a_shorter_client_deadline_wins() {
        use tower::ServiceExt as _;

        let never = tower::service_fn(|_: Request<()>| {
            std::future::pending::<Result<Response<()>, std::convert::Infallible>>()
        });
        let service = CallTimeoutLayer::new(Duration::from_secs(30)).layer(never);
        // A client's deadline is cut AHEAD_OF_TONIC early; the server's is not.
        let server = Duration::from_secs(30);
        let client = Duration::from_secs(2) - AHEAD_OF_TONIC;
        for (grpc_timeout, after) in [(None, server), (Some("2S"), client), (Some("1H"), server)] {
            let mut request = Request::new(());
            if let Some(value) = grpc_timeout {
                request
                    .headers_mut()
                    .insert("grpc-timeout", value.parse().unwrap());
            }
            let started = tokio::time::Instant::now();
            let response = service.clone().oneshot(request).await.unwrap();
            assert_eq!(started.elapsed(), after, "{grpc_timeout:?}");
            let status = Status::from_header_map(response.headers()).unwrap();
            assert_eq!(
                (status.code(), status.message()),
                (tonic::Code::Cancelled, TIMED_OUT)
            );
        }
    }
}
