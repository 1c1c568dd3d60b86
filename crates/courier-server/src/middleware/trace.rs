//! Tracing for every RPC, at next to no cost for the calls that succeed: [`RpcTraceLayer`].
//!
//! A failed call (any status but OK) is logged at info by one `rpc finished` line with its
//! method, peer, request id, status code and timings; so is a call dropped before its response
//! (the call timeout cut it off, or the client left). A successful call is logged only at debug
//! (`COURIER_LOG=debug`), where each call also gets an `rpc` span with its method, peer and
//! request id around everything logged while it is handled.
//!
//! At info nothing is formatted for a call that succeeds: the span is a debug span, so it is not
//! created at all, and what a failure line needs is kept as it came (the shared bytes of the
//! path and of the request id, the peer's address) until the call ends. The tower-http
//! `TraceLayer` this replaces, with an info span whose fields were formatted at its creation,
//! cost 1.4–1.5 µs per successful call at info in a micro-benchmark (a layer around a service
//! answering at once, release build); this layer costs about 0.3 µs there. A unary Hello takes
//! about 18 µs of server CPU (BENCHMARKS.md).
//!
//! A call's end is read from `grpc-status` alone (the message would be decoded for nothing): in
//! the response headers of a trailers-only response, else in the trailers. Values the client
//! controls are logged through [`Capped`].

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Code;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};
use tracing::Span;

use crate::logging::Capped;

/// The layer tracing every RPC; see the [module](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcTraceLayer;

/// The [`RpcTraceLayer`].
pub fn trace_layer() -> RpcTraceLayer {
    RpcTraceLayer
}

impl<S> Layer<S> for RpcTraceLayer {
    type Service = RpcTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcTrace { inner }
    }
}

/// The service of [`RpcTraceLayer`].
#[derive(Clone, Debug)]
pub struct RpcTrace<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for RpcTrace<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ResBody: Body,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = TracedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let call = Call::of(&request);
        let inner = {
            let _entered = call.span.enter();
            self.inner.call(request)
        };
        TracedFuture {
            inner,
            call: Some(call),
        }
    }
}

/// What the end of one call is logged with, kept unformatted until then.
struct Call {
    path: Option<PathAndQuery>,
    peer: Option<SocketAddr>,
    request_id: Option<HeaderValue>,
    started: Instant,
    /// The `rpc` span: disabled (free) unless debug lines are on.
    span: Span,
}

/// Milliseconds as a number: formatting it into a string would cost an allocation.
fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Logs the end of `$call` at `$level`: with its own fields when its span is off, in its span
/// (which has them) when it is on.
macro_rules! log_end {
    ($level:expr, $call:expr, $code:expr, $latency_ms:expr, $stream_ms:expr) => {{
        let call: &Call = $call;
        let code: Code = $code;
        let (latency_ms, stream_ms): (Option<f64>, Option<f64>) = ($latency_ms, $stream_ms);
        if call.span.is_disabled() {
            tracing::event!(
                $level,
                method = %Capped(call.method()),
                peer = call.peer.map(tracing::field::display),
                request_id = call.request_id().map(tracing::field::display),
                ?code,
                latency_ms,
                stream_ms,
                "rpc finished"
            );
        } else {
            tracing::event!(parent: &call.span, $level, ?code, latency_ms, stream_ms, "rpc finished");
        }
    }};
}

impl Call {
    fn of<B>(request: &Request<B>) -> Self {
        let extensions = request.extensions();
        let peer = extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .or_else(|| {
                extensions
                    .get::<TlsConnectInfo<TcpConnectInfo>>()
                    .and_then(|info| info.get_ref().remote_addr())
            });
        let request_id = request
            .headers()
            .get(courier_common::metadata::REQUEST_ID)
            .cloned();
        // Not even created (nor its fields formatted) unless debug lines are on.
        let span = tracing::debug_span!(
            "rpc",
            method = %Capped(request.uri().path()),
            peer = peer.map(tracing::field::display),
            request_id = request_id
                .as_ref()
                .and_then(|id| id.to_str().ok())
                .map(|id| tracing::field::display(Capped(id))),
        );
        Self {
            path: request.uri().path_and_query().cloned(),
            peer,
            request_id,
            started: Instant::now(),
            span,
        }
    }

    fn method(&self) -> &str {
        self.path.as_ref().map_or("", PathAndQuery::path)
    }

    fn request_id(&self) -> Option<Capped<'_>> {
        let id = self.request_id.as_ref()?.to_str().ok()?;
        Some(Capped(id))
    }

    /// Logs a call dropped before its response: cut off by the call timeout (the client is
    /// told CANCELLED, outside this layer), or the client reset it or went away.
    fn abandoned(&self) {
        let latency_ms = milliseconds(self.started.elapsed());
        let message = "rpc dropped before its response: the call timeout, or the client left";
        if self.span.is_disabled() {
            tracing::info!(
                method = %Capped(self.method()),
                peer = self.peer.map(tracing::field::display),
                request_id = self.request_id().map(tracing::field::display),
                latency_ms,
                "{message}"
            );
        } else {
            tracing::info!(parent: &self.span, latency_ms, "{message}");
        }
    }

    /// Logs the end of the call: failed at info, successful at debug, with `latency_ms` for a
    /// trailers-only response and `stream_ms` after a response stream.
    fn finished(&self, code: Code, latency_ms: Option<f64>, stream_ms: Option<f64>) {
        if code == Code::Ok {
            log_end!(tracing::Level::DEBUG, self, code, latency_ms, stream_ms);
        } else {
            log_end!(tracing::Level::INFO, self, code, latency_ms, stream_ms);
        }
    }
}

/// The status code `headers` carry, if they end the call.
fn status_of(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|code| Code::from_bytes(code.as_bytes()))
}

pin_project! {
    /// The response future of [`RpcTrace`]: polls the call in its span, and logs the end of a
    /// trailers-only response, or a call dropped before it had a response.
    pub struct TracedFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }

    impl<F> PinnedDrop for TracedFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                call.abandoned();
            }
        }
    }
}

impl<F, ResBody, E> Future for TracedFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: fmt::Display,
    ResBody: Body,
{
    type Output = Result<Response<TracedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.call.as_ref() {
            Some(call) => {
                let _entered = call.span.enter();
                this.inner.poll(cx)
            }
            None => this.inner.poll(cx),
        };
        let outcome = ready!(polled);
        let call = this.call.take();
        Poll::Ready(match outcome {
            Ok(response) => {
                let call = match (call, status_of(response.headers())) {
                    (Some(call), Some(code)) => {
                        let latency = milliseconds(call.started.elapsed());
                        call.finished(code, Some(latency), None);
                        None
                    }
                    (call, _) => call,
                };
                Ok(response.map(|inner| TracedBody { inner, call }))
            }
            Err(error) => {
                if let Some(call) = call {
                    tracing::info!(
                        method = %Capped(call.method()),
                        peer = call.peer.map(tracing::field::display),
                        request_id = call.request_id().map(tracing::field::display),
                        %error,
                        "rpc failed without a response"
                    );
                }
                Err(error)
            }
        })
    }
}

pin_project! {
    /// The response body of [`RpcTrace`]: polled in the call's span; logs the call's end when
    /// the trailers go out.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }
}

impl<B: Body> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = match this.call.as_ref() {
            Some(call) => {
                let _entered = call.span.enter();
                this.inner.poll_frame(cx)
            }
            None => this.inner.poll_frame(cx),
        };
        let frame = ready!(polled);
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(status_of)
                    && let Some(call) = this.call.take()
                {
                    let stream_ms = milliseconds(call.started.elapsed());
                    call.finished(code, None, Some(stream_ms));
                }
            }
            // The client reset the stream or went away: its own doing, and nobody to answer.
            Some(Err(_)) => {
                if let Some(call) = this.call.take() {
                    tracing::debug!(parent: &call.span, "rpc response stream failed");
                }
            }
            None => {
                this.call.take();
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt as _;

    use super::*;
    use crate::logging::{MAX_LOGGED, capture};

    /// A response body of no data, then `trailers` if any.
    #[derive(Default)]
    struct Trailers(Option<HeaderMap>);

    impl Body for Trailers {
        type Data = bytes::Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Ready(self.0.take().map(|trailers| Ok(Frame::trailers(trailers))))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_none()
        }
    }

    fn status(code: Code) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from(code as i32));
        headers
    }

    fn request(path: &str, request_id: &str) -> Request<()> {
        let mut request = Request::builder()
            .uri(path)
            .header(courier_common::metadata::REQUEST_ID, request_id)
            .body(())
            .unwrap();
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: Some("127.0.0.1:50051".parse().unwrap()),
            remote_addr: Some("192.0.2.7:43210".parse().unwrap()),
        });
        request
    }

    /// Calls a traced service answering `headers` and a body ending with `trailers`, reads the
    /// body to its end, and answers what was logged at `filter`.
    async fn traced_call(
        filter: &str,
        request: Request<()>,
        headers: HeaderMap,
        trailers: Option<HeaderMap>,
    ) -> String {
        let (subscriber, log) = capture::subscriber(filter);
        let _default = tracing::subscriber::set_default(subscriber);
        let service = RpcTraceLayer.layer(tower::service_fn(move |_: Request<()>| {
            let mut response = Response::new(Trailers(trailers.clone()));
            *response.headers_mut() = headers.clone();
            async move { Ok::<_, Infallible>(response) }
        }));
        let mut body = service.oneshot(request).await.unwrap().into_body();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            frame.unwrap();
        }
        log.text()
    }

    #[tokio::test]
    async fn a_failed_call_is_logged_with_method_peer_request_id_and_code() {
        let path = "/courier.hello.v1.SayHelloService/Hello";
        let trailers_only = traced_call(
            "info",
            request(path, "req-1"),
            status(Code::InvalidArgument),
            None,
        )
        .await;
        let streamed = traced_call(
            "info",
            request(path, "req-2"),
            HeaderMap::new(),
            Some(status(Code::Unavailable)),
        )
        .await;
        for (log, id, code) in [
            (trailers_only, "req-1", "InvalidArgument"),
            (streamed, "req-2", "Unavailable"),
        ] {
            assert!(log.contains(" INFO "), "{log}");
            for field in [
                format!("method={path}"),
                "peer=192.0.2.7:43210".into(),
                format!("request_id={id}"),
                format!("code={code}"),
                "rpc finished".into(),
            ] {
                assert!(log.contains(&field), "{field} in {log}");
            }
        }
    }

    #[tokio::test]
    async fn a_successful_call_is_logged_only_at_debug() {
        let path = "/courier.hello.v1.SayHelloService/Hello";
        let call = |filter| {
            traced_call(
                filter,
                request(path, "req-3"),
                HeaderMap::new(),
                Some(status(Code::Ok)),
            )
        };
        assert_eq!(call("info").await, "");
        let log = call("debug").await;
        assert!(
            log.contains(&format!(
                "rpc{{method={path} peer=192.0.2.7:43210 request_id=req-3}}"
            )) && log.contains("code=Ok"),
            "{log}"
        );
    }

    #[tokio::test]
    async fn a_call_dropped_before_its_response_is_logged() {
        let (subscriber, log) = capture::subscriber("info");
        let _default = tracing::subscriber::set_default(subscriber);
        let service = RpcTraceLayer.layer(tower::service_fn(|_: Request<()>| {
            std::future::pending::<Result<Response<Trailers>, Infallible>>()
        }));
        let call = service.oneshot(request(
            "/courier.message.v1.MessageService/SendMessage",
            "req-4",
        ));
        let cut_off = tokio::time::timeout(Duration::from_millis(10), call).await;
        assert!(cut_off.is_err());
        let log = log.text();
        assert!(
            log.contains(" INFO ")
                && log.contains("rpc dropped before its response")
                && log.contains("method=/courier.message.v1.MessageService/SendMessage")
                && log.contains("peer=192.0.2.7:43210")
                && log.contains("request_id=req-4"),
            "{log}"
        );
    }

    #[tokio::test]
    async fn what_the_client_controls_is_logged_capped() {
        let request = request(&format!("/{}", "m".repeat(5000)), &"r".repeat(5000));
        for filter in ["info", "debug"] {
            let line = traced_call(
                filter,
                request_clone(&request),
                status(Code::Internal),
                None,
            )
            .await;
            assert!(line.contains("rpc finished"), "{line}");
            assert!(line.len() < 600, "{} bytes: {line}", line.len());
            assert!(
                line.contains(&format!("/{}…(5001 bytes)", "m".repeat(MAX_LOGGED - 1))),
                "{line}"
            );
            assert!(
                line.contains(&format!("{}…(5000 bytes)", "r".repeat(MAX_LOGGED))),
                "{line}"
            );
        }
    }

    fn request_clone(request: &Request<()>) -> Request<()> {
        let mut clone = Request::builder()
            .uri(request.uri().clone())
            .body(())
            .unwrap();
        *clone.headers_mut() = request.headers().clone();
        clone
    }
}
