//! Oversized messages answered RESOURCE_EXHAUSTED, as grpc-go, grpc-java and C-core answer
//! them and clients' retry policies expect, where tonic answers OUT_OF_RANGE:
//! [`OversizedLayer`].
//!
//! tonic enforces `max_decoding_message_size` and `max_encoding_message_size` in its codec,
//! below anything a service sees, and answers OUT_OF_RANGE with "Error, decoded message length
//! too large: ..." or "Error, encoded message length too large: ...". This layer rewrites the
//! `grpc-status` of exactly those (the code and tonic's message prefix must both match, so no
//! other status is touched) wherever the status travels:
//!
//! - in the headers of a trailers-only response: an oversized unary or client-streaming
//!   request, refused before or by the handler;
//! - in the trailers ending a response: an oversized response message, and an oversized
//!   message of a bidirectional stream, which Chat ends its stream with.
//!
//! The message and every other header and trailer (`x-message-count` among them) are kept. A
//! message too large once decompressed already gets RESOURCE_EXHAUSTED from tonic.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// How tonic's messages for a message over the size limit start, decoding and encoding.
const TONIC_TOO_LARGE: [&str; 2] = [
    "Error, decoded message length too large",
    "Error, encoded message length too large",
];

/// Turns tonic's OUT_OF_RANGE for an oversized message into RESOURCE_EXHAUSTED, in the
/// response headers and in the trailers; see the [module](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct OversizedLayer;

impl<S> Layer<S> for OversizedLayer {
    type Service = Oversized<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Oversized { inner }
    }
}

/// The service of [`OversizedLayer`].
#[derive(Clone, Debug)]
pub struct Oversized<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for Oversized<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<OversizedBody<ResBody>>;
    type Error = S::Error;
    type Future = OversizedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        OversizedFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The response future of [`Oversized`].
    pub struct OversizedFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, ResBody, E> Future for OversizedFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<OversizedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = ready!(self.project().inner.poll(cx))?;
        as_resource_exhausted(response.headers_mut());
        Poll::Ready(Ok(response.map(|inner| OversizedBody { inner })))
    }
}

pin_project! {
    /// The response body of [`Oversized`]: the same frames, the trailers mapped.
    pub struct OversizedBody<B> {
        #[pin]
        inner: B,
    }
}

impl<B: Body> Body for OversizedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut frame = ready!(self.project().inner.poll_frame(cx));
        if let Some(trailers) = frame
            .as_mut()
            .and_then(|frame| frame.as_mut().ok())
            .and_then(Frame::trailers_mut)
        {
            as_resource_exhausted(trailers);
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

/// Rewrites `grpc-status` to RESOURCE_EXHAUSTED if `headers` carry tonic's OUT_OF_RANGE for an
/// oversized message.
fn as_resource_exhausted(headers: &mut HeaderMap) {
    // Only an OUT_OF_RANGE has its message read, with tonic's own decoding of `grpc-message`.
    if headers
        .get("grpc-status")
        .is_none_or(|code| code.as_bytes() != b"11")
    {
        return;
    }
    let oversized = tonic::Status::from_header_map(headers).is_some_and(|status| {
        TONIC_TOO_LARGE
            .iter()
            .any(|prefix| status.message().starts_with(prefix))
    });
    if oversized {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
    }
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;

    fn headers_of(status: &Status) -> HeaderMap {
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        headers
    }

    fn mapped(status: &Status) -> Status {
        let mut headers = headers_of(status);
        as_resource_exhausted(&mut headers);
        Status::from_header_map(&headers).unwrap()
    }

    #[test]
    fn tonic_size_limit_statuses_become_resource_exhausted_keeping_the_rest() {
        for direction in ["decoded", "encoded"] {
            let message = format!(
                "Error, {direction} message length too large: found 2000 bytes, the limit is: 1024 bytes"
            );
            let mut trailers = tonic::metadata::MetadataMap::new();
            trailers.insert("x-message-count", "3".parse().unwrap());
            let status = Status::with_metadata(Code::OutOfRange, message.clone(), trailers);
            let status = mapped(&status);
            assert_eq!(status.code(), Code::ResourceExhausted);
            assert_eq!(status.message(), message);
            assert_eq!(status.metadata().get("x-message-count").unwrap(), "3");
        }
    }

    #[test]
    fn other_statuses_are_left_alone() {
        for status in [
            Status::out_of_range("after_id is past the end"),
            Status::out_of_range("decoded message length too large"),
            Status::invalid_argument("Error, decoded message length too large: found 2 bytes"),
            Status::ok(""),
        ] {
            let before = headers_of(&status);
            let mut after = before.clone();
            as_resource_exhausted(&mut after);
            assert_eq!(before, after, "{status:?}");
        }
    }

    #[tokio::test]
    async fn trailers_only_responses_and_trailers_are_both_mapped() {
        use tower::ServiceExt as _;

        let oversized = Status::out_of_range(
            "Error, encoded message length too large: found 105 bytes, the limit is: 100 bytes",
        );
        let headers = headers_of(&oversized);
        let service = OversizedLayer.layer(tower::service_fn(move |_: Request<()>| {
            let body = tonic::body::Body::new(TrailersBody(Some(headers.clone())));
            let mut response = oversized.clone().into_http::<tonic::body::Body>();
            *response.body_mut() = body;
            async move { Ok::<_, std::convert::Infallible>(response) }
        }));
        let response = service.oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.headers()["grpc-status"], "8");
        let mut body = response.into_body();
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame.trailers_ref().unwrap()["grpc-status"], "8");
    }

    /// A body of only `trailers`.
    struct TrailersBody(Option<HeaderMap>);

    impl Body for TrailersBody {
        type Data = bytes::Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Ready(self.0.take().map(|trailers| Ok(Frame::trailers(trailers))))
        }
    }
}
