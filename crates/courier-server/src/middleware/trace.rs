//! Tracing for every RPC: one `rpc` span per call with method, peer and request id, and one
//! `rpc finished` event with the status code and timings.

use std::time::Duration;

use http::{HeaderMap, Request, Response};
use tower_http::classify::{GrpcErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnRequest, MakeSpan, OnEos, OnResponse, TraceLayer,
};
use tracing::Span;

/// Tracing for every RPC: one `rpc` span per call, with method, peer and request id, and one
/// `rpc finished` event with the status code and timings; see [`RecordStatus`].
pub type RpcTraceLayer = TraceLayer<
    SharedClassifier<GrpcErrorsAsFailures>,
    RpcSpan,
    DefaultOnRequest,
    RecordStatus,
    DefaultOnBodyChunk,
    RecordStatus,
    (),
>;

/// The [`RpcTraceLayer`]; failures are logged once, by [`RecordStatus`], not again as errors.
pub fn trace_layer() -> RpcTraceLayer {
    TraceLayer::new_for_grpc()
        .make_span_with(RpcSpan)
        .on_response(RecordStatus)
        .on_eos(RecordStatus)
        .on_failure(())
}

/// Makes the span of one RPC.
#[derive(Clone, Copy, Debug)]
pub struct RpcSpan;

impl<B> MakeSpan<B> for RpcSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let peer = request
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|info| info.remote_addr())
            .or_else(|| {
                request
                    .extensions()
                    .get::<tonic::transport::server::TlsConnectInfo<
                        tonic::transport::server::TcpConnectInfo,
                    >>()
                    .and_then(|info| info.get_ref().remote_addr())
            });
        let request_id = request
            .headers()
            .get(courier_common::metadata::REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!(
            "rpc",
            method = request.uri().path(),
            peer = peer.map(tracing::field::display),
            request_id,
            latency_ms = tracing::field::Empty,
        )
    }
}

/// Logs the end of each RPC with its gRPC status code and timings, on the event: recording them
/// into the span would re-format the span's fields. The handler's latency goes into the span
/// only when debug lines are on.
///
/// Failed RPCs are logged at info, successful ones at debug: a line per successful call cost
/// unary Hello about a tenth of its throughput (BENCHMARKS.md). `COURIER_LOG=debug` logs all.
#[derive(Clone, Copy, Debug)]
pub struct RecordStatus;

/// Milliseconds as a number: formatting it into a string would cost an allocation per RPC.
fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The status code `headers` carry, if they end the RPC. Only the code is read: the message
/// would be decoded for nothing.
fn status_of(headers: Option<&HeaderMap>) -> Option<tonic::Code> {
    headers?
        .get("grpc-status")
        .map(|code| tonic::Code::from_bytes(code.as_bytes()))
}

/// Logs the end of an RPC, with `latency_ms` for a trailers-only response and `stream_ms` after
/// a response stream.
fn log_end(code: tonic::Code, latency_ms: Option<f64>, stream_ms: Option<f64>, span: &Span) {
    if code == tonic::Code::Ok {
        tracing::debug!(parent: span, ?code, latency_ms, stream_ms, "rpc finished");
    } else {
        tracing::info!(parent: span, ?code, latency_ms, stream_ms, "rpc finished");
    }
}

impl<B> OnResponse<B> for RecordStatus {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        // A trailers-only response (an error before any message) carries its status in the
        // headers; any other RPC ends with its trailers, in `on_eos`.
        if let Some(code) = status_of(Some(response.headers())) {
            log_end(code, Some(milliseconds(latency)), None, span);
        } else if tracing::enabled!(tracing::Level::DEBUG) {
            // Only a debug line (a successful end) would show it: at info, recording it is
            // work for nothing.
            span.record("latency_ms", milliseconds(latency));
        }
    }
}

impl OnEos for RecordStatus {
    fn on_eos(self, trailers: Option<&HeaderMap>, stream_duration: Duration, span: &Span) {
        if let Some(code) = status_of(trailers) {
            log_end(code, None, Some(milliseconds(stream_duration)), span);
        }
    }
}
