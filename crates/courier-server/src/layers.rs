//! Tower layers around every RPC, whatever its kind: request ids, a tracing span per RPC,
//! bearer-token authentication, and a check of the client's deadline.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Request, Response};
use tonic::Status;
use tower_http::classify::{GrpcErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnRequest, MakeSpan, OnEos, OnResponse, TraceLayer,
};
use tower_http::validate_request::ValidateRequest;
use tracing::Span;

use crate::auth::TokenStore;
use crate::error::CourierError;
use crate::service::AuthenticatedUser;

/// Header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// RPCs anyone may call: health checks and reflection carry no secrets.
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

// === authentication ===

/// Checks `authorization: Bearer <token>` and records the user for the handlers.
#[derive(Clone)]
pub struct BearerAuth {
    tokens: Arc<TokenStore>,
}

impl BearerAuth {
    /// Authenticates against `tokens`.
    pub fn new(tokens: Arc<TokenStore>) -> Self {
        Self { tokens }
    }

    fn user_of(&self, headers: &HeaderMap) -> Result<String, CourierError> {
        let unauthenticated = |reason: &str| CourierError::Unauthenticated(reason.to_owned());
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| unauthenticated("missing authorization metadata"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| unauthenticated("authorization must be `Bearer <token>`"))?;
        self.tokens
            .authenticate(token)
            .map(str::to_owned)
            .ok_or_else(|| unauthenticated("unknown token"))
    }
}

impl<B> ValidateRequest<B> for BearerAuth {
    type ResponseBody = tonic::body::Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Self::ResponseBody>> {
        if is_public(request.uri().path()) {
            return Ok(());
        }
        match self.user_of(request.headers()) {
            Ok(user) => {
                request.extensions_mut().insert(AuthenticatedUser(user));
                Ok(())
            }
            Err(error) => {
                tracing::warn!(path = request.uri().path(), %error, "unauthenticated");
                Err(Status::from(error).into_http())
            }
        }
    }
}

// === deadlines ===

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
                let error = CourierError::invalid(
                    "grpc-timeout",
                    "expected 1 to 8 digits and a unit (H, M, S, m, u, n)",
                );
                Err(Status::from(error).into_http())
            }
            _ => Ok(()),
        }
    }
}

// === tracing ===

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
            .get(REQUEST_ID_HEADER)
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
        }
    }
}
