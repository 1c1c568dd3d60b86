//! gRPC-Web on the gRPC port: [`WebLayer`] translates gRPC-Web calls to gRPC (tonic-web) and
//! answers CORS (tower-http) for the origins the operator lists, in front of every other layer,
//! so that those see a gRPC-Web call exactly as a gRPC one.
//!
//! Each request is steered by its method and headers alone (and the page's by its path):
//!
//! - The chat page's requests ([`page::serves`]: GET or HEAD without a gRPC content type, or
//!   another method on one of the page's paths) are answered by [`page::answer`], over either
//!   HTTP version, before the translation (which would answer them 400) and before the gRPC
//!   router.
//! - HTTP/2 gRPC (any content type but gRPC-Web's, any method but OPTIONS) goes straight to the
//!   layers inside, untouched: no translation, no CORS, no boxing of its bodies.
//! - A request with the `Origin` of a listed origin goes through CORS (tower-http's
//!   `CorsLayer`) and then tonic-web's `GrpcWebService`: a preflight is answered by CORS, and
//!   everything else gets CORS headers on its answer.
//! - Any other OPTIONS request is refused: 403 from an origin not listed (a preflight that
//!   fails, so the browser sends nothing), else 405.
//! - Everything else goes to `GrpcWebService` without CORS: a gRPC-Web call
//!   (`application/grpc-web`, `application/grpc-web+proto`, `application/grpc-web-text`,
//!   `application/grpc-web-text+proto`, over HTTP/1.1 or HTTP/2) is translated; any other
//!   HTTP/1.1 request gets tonic-web's 400 (a gRPC-Web content type with a method other than POST
//!   its 405).
//!
//! So an answer carries CORS headers only for a listed origin. From any other origin, the call
//! itself is still served, as for a client that sends no `Origin`, and the browser refuses to
//! hand its answer to the page: CORS protects browsers' users, it is no authentication. (A
//! browser never sends such a call: a gRPC-Web content type always needs a preflight.)
//!
//! HTTP/2 bounds a request's header list (`--max-header-list-bytes`) before any layer sees it;
//! HTTP/1.1 has no such setting in tonic, so the same bound, counted the HTTP/2 way (name, value
//! and 32 bytes per field), is checked here and answered 431 as HTTP/2 does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt as _};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

use crate::config::CorsOrigin;
use crate::page;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request headers a gRPC-Web client may send cross-origin (the preflight's
/// `Access-Control-Allow-Headers`).
pub const ALLOWED_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "x-request-id",
];

/// The response headers a page may read (`Access-Control-Expose-Headers`): the status of a
/// trailers-only answer, the request id and the message count of ReceiveMessage.
pub const EXPOSED_HEADERS: [&str; 5] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
    "x-message-count",
];

/// How long a browser may keep a preflight's answer (`Access-Control-Max-Age`).
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// The content types of gRPC-Web, which tonic-web translates.
const GRPC_WEB_TYPES: [&[u8]; 4] = [
    b"application/grpc-web",
    b"application/grpc-web+proto",
    b"application/grpc-web-text",
    b"application/grpc-web-text+proto",
];

/// Whether `headers` announce a gRPC-Web body.
fn is_grpc_web(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| GRPC_WEB_TYPES.contains(&value.as_bytes()))
}

/// The CORS rules for `origins`; see the [module](self).
pub fn cors_layer(origins: &[CorsOrigin]) -> CorsLayer {
    let origins: Arc<[HeaderValue]> = origins
        .iter()
        .map(|origin| origin.header_value().clone())
        .collect();
    let header_names = |names: &[&'static str]| -> Vec<HeaderName> {
        names
            .iter()
            .map(|name| HeaderName::from_static(name))
            .collect()
    };
    CorsLayer::new()
        // A predicate over a shared list: the layer is cloned for every call from a listed
        // origin.
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.contains(origin)
        }))
        .allow_methods([Method::POST])
        .allow_headers(header_names(&ALLOWED_HEADERS))
        .expose_headers(header_names(&EXPOSED_HEADERS))
        .max_age(PREFLIGHT_MAX_AGE)
}

/// gRPC-Web translation and CORS in front of the layers it wraps; see the [module](self).
#[derive(Clone, Debug)]
pub struct WebLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    origins: Vec<HeaderValue>,
    cors: CorsLayer,
    max_header_list_bytes: usize,
}

impl WebLayer {
    /// CORS for `origins` (none: no origin gets CORS headers); HTTP/1.1 header lists bounded
    /// by `max_header_list_bytes`, as HTTP/2's are.
    pub fn new(origins: &[CorsOrigin], max_header_list_bytes: u32) -> Self {
        Self {
            shared: Arc::new(Shared {
                origins: origins
                    .iter()
                    .map(|origin| origin.header_value().clone())
                    .collect(),
                cors: cors_layer(origins),
                max_header_list_bytes: usize::try_from(max_header_list_bytes).unwrap_or(usize::MAX),
            }),
        }
    }
}

impl<S> Layer<S> for WebLayer {
    type Service = Web<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Web {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`WebLayer`].
#[derive(Clone, Debug)]
pub struct Web<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// The size of `headers` as HTTP/2 counts a header list (RFC 9113, SETTINGS_MAX_HEADER_LIST_SIZE).
fn header_list_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

/// Where [`Web`] sends a request; see the [module](self).
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Page,
    Grpc,
    Cors,
    Web,
    Refuse(StatusCode),
}

impl Shared {
    fn route<B>(&self, request: &Request<B>) -> Route {
        let headers = request.headers();
        let http2 = request.version() == Version::HTTP_2;
        let options = request.method() == Method::OPTIONS;
        let page = page::serves(request);
        if http2 && !options && !page && !is_grpc_web(headers) {
            return Route::Grpc;
        }
        if !http2 && header_list_size(headers) > self.max_header_list_bytes {
            return Route::Refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        if page {
            return Route::Page;
        }
        match headers.get(header::ORIGIN) {
            Some(origin) if self.origins.contains(origin) => Route::Cors,
            Some(_) if options => Route::Refuse(StatusCode::FORBIDDEN),
            None if options => Route::Refuse(StatusCode::METHOD_NOT_ALLOWED),
            _ => Route::Web,
        }
    }
}

/// The web path's service, CORS around it or not.
type WebPath<S> = Oneshot<GrpcWebService<S>, Request<tonic::body::Body>>;
/// The web path's service with CORS around it.
type CorsPath<S> = Oneshot<Cors<GrpcWebService<S>>, Request<tonic::body::Body>>;

impl<S, ResBody> Service<Request<tonic::body::Body>> for Web<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<ResBody>> + Clone,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError> + std::fmt::Display,
{
    type Response = Response<WebBody<ResBody>>;
    type Error = S::Error;
    type Future = WebFuture<S::Future, WebPath<S>, CorsPath<S>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        // The web paths take a clone, readied by the oneshot; `self.inner` stays ready for the
        // next call, as `poll_ready` promised.
        let kind = match self.shared.route(&request) {
            Route::Page => FutureKind::Page {
                response: Some(page::answer(&request)),
            },
            Route::Grpc => FutureKind::Grpc {
                future: self.inner.call(request),
            },
            Route::Web => FutureKind::Web {
                future: GrpcWebLayer::new()
                    .layer(self.inner.clone())
                    .oneshot(request),
            },
            Route::Cors => FutureKind::Cors {
                future: self
                    .shared
                    .cors
                    .layer(GrpcWebLayer::new().layer(self.inner.clone()))
                    .oneshot(request),
            },
            Route::Refuse(status) => FutureKind::Refused {
                status: Some(status),
            },
        };
        WebFuture { kind }
    }
}

pin_project! {
    /// The response future of [`Web`].
    pub struct WebFuture<F, W, C> {
        #[pin]
        kind: FutureKind<F, W, C>,
    }
}

pin_project! {
    #[project = FutureKindProj]
    enum FutureKind<F, W, C> {
        // A gRPC call, untouched.
        Grpc { #[pin] future: F },
        // gRPC-Web translation.
        Web { #[pin] future: W },
        // CORS, then gRPC-Web translation.
        Cors { #[pin] future: C },
        // Refused before any layer, until answered.
        Refused { status: Option<StatusCode> },
        // The page's answer, until handed out.
        Page { response: Option<Response<Bytes>> },
    }
}

impl<F, W, C, ResBody, E> Future for WebFuture<F, W, C>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    W: Future<Output = Result<Response<tonic::body::Body>, E>>,
    C: Future<Output = Result<Response<tonic::body::Body>, E>>,
{
    type Output = Result<Response<WebBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let web = |response: Response<tonic::body::Body>| {
            response.map(|inner| WebBody::of(BodyKind::Web { inner }))
        };
        match self.project().kind.project() {
            FutureKindProj::Grpc { future } => future
                .poll(cx)
                .map_ok(|response| response.map(|inner| WebBody::of(BodyKind::Grpc { inner }))),
            FutureKindProj::Web { future } => future.poll(cx).map_ok(web),
            FutureKindProj::Cors { future } => future.poll(cx).map_ok(web),
            FutureKindProj::Refused { status } => {
                let mut response = Response::new(WebBody::of(BodyKind::Empty));
                let status = status.take().expect("polled after completion");
                *response.status_mut() = status;
                if status == StatusCode::METHOD_NOT_ALLOWED {
                    response
                        .headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("POST"));
                }
                Poll::Ready(Ok(response))
            }
            FutureKindProj::Page { response } => {
                let response = response.take().expect("polled after completion");
                Poll::Ready(Ok(response.map(|data| {
                    WebBody::of(BodyKind::Page {
                        data: (!data.is_empty()).then_some(data),
                    })
                })))
            }
        }
    }
}

pin_project! {
    /// The response body of [`Web`]: a gRPC call's own body, or tonic's for the web path.
    pub struct WebBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[project = BodyKindProj]
    enum BodyKind<B> {
        // A gRPC call's body, untouched.
        Grpc { #[pin] inner: B },
        // The web path's body: translated to gRPC-Web, or an HTTP error's.
        Web { #[pin] inner: tonic::body::Body },
        // No body.
        Empty,
        // The page's bytes, until sent.
        Page { data: Option<Bytes> },
    }
}

impl<B> WebBody<B> {
    fn of(kind: BodyKind<B>) -> Self {
        Self { kind }
    }
}

impl<B> Body for WebBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            BodyKindProj::Grpc { inner } => inner.poll_frame(cx).map_err(Into::into),
            BodyKindProj::Web { inner } => inner.poll_frame(cx).map_err(Into::into),
            BodyKindProj::Empty => Poll::Ready(None),
            BodyKindProj::Page { data } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Grpc { inner } => inner.is_end_stream(),
            BodyKind::Web { inner } => inner.is_end_stream(),
            BodyKind::Empty => true,
            BodyKind::Page { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Grpc { inner } => inner.size_hint(),
            BodyKind::Web { inner } => inner.size_hint(),
            BodyKind::Empty => SizeHint::with_exact(0),
            BodyKind::Page { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_four_grpc_web_content_types_are_translated() {
        for (content_type, web) in [
            ("application/grpc-web", true),
            ("application/grpc-web+proto", true),
            ("application/grpc-web-text", true),
            ("application/grpc-web-text+proto", true),
            ("application/grpc", false),
            ("application/grpc+proto", false),
            ("application/grpc-web+json", false),
            ("application/grpc-web; charset=utf-8", false),
            ("text/plain", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            assert_eq!(is_grpc_web(&headers), web, "{content_type}");
        }
        assert!(!is_grpc_web(&HeaderMap::new()));
    }

    fn request(version: Version, method: Method, headers: &[(&str, &str)]) -> Request<()> {
        let mut request = Request::builder().version(version).method(method);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap()
    }

    #[test]
    fn requests_are_routed_by_their_headers() {
        let origins = ["https://chat.example.com".parse().unwrap()];
        let web = WebLayer::new(&origins, 1024);
        let route = |version, method, headers: &[(&str, &str)]| {
            web.shared.route(&request(version, method, headers))
        };
        let grpc = [("content-type", "application/grpc")];
        let grpc_web = [("content-type", "application/grpc-web+proto")];
        let listed = ("origin", "https://chat.example.com");
        let unlisted = ("origin", "https://evil.example.com");
        use Version as V;
        // gRPC over HTTP/2 is untouched, whatever its origin.
        assert_eq!(route(V::HTTP_2, Method::POST, &grpc), Route::Grpc);
        assert_eq!(
            route(V::HTTP_2, Method::POST, &[grpc[0], listed]),
            Route::Grpc
        );
        // gRPC-Web over either version; CORS only for a listed origin.
        for version in [V::HTTP_11, V::HTTP_2] {
            assert_eq!(route(version, Method::POST, &grpc_web), Route::Web);
            assert_eq!(
                route(version, Method::POST, &[grpc_web[0], unlisted]),
                Route::Web
            );
            assert_eq!(
                route(version, Method::POST, &[grpc_web[0], listed]),
                Route::Cors
            );
            assert_eq!(route(version, Method::OPTIONS, &[listed]), Route::Cors);
            assert_eq!(
                route(version, Method::OPTIONS, &[unlisted]),
                Route::Refuse(StatusCode::FORBIDDEN)
            );
            assert_eq!(
                route(version, Method::OPTIONS, &[]),
                Route::Refuse(StatusCode::METHOD_NOT_ALLOWED)
            );
        }
        // Anything else over HTTP/1.1 gets tonic-web's answer.
        assert_eq!(route(V::HTTP_11, Method::POST, &grpc), Route::Web);
        // The page's requests go to the page over either version, whatever their origin; these
        // requests' path is `/`, the page's, where other methods are the page's to refuse.
        for version in [V::HTTP_11, V::HTTP_2] {
            assert_eq!(
                route(version, Method::POST, &[("content-type", "text/plain")]),
                Route::Page
            );
            assert_eq!(route(version, Method::GET, &[]), Route::Page);
            assert_eq!(route(version, Method::HEAD, &[unlisted]), Route::Page);
            assert_eq!(route(version, Method::GET, &grpc_web), Route::Web);
        }
        // HTTP/1.1 header lists are bounded as HTTP/2's are.
        let big = "x".repeat(1024);
        assert_eq!(
            route(V::HTTP_11, Method::POST, &[grpc_web[0], ("x-big", &big)]),
            Route::Refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }

    #[test]
    fn header_lists_are_counted_as_http2_counts_them() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("12345"));
        headers.append("x-a", HeaderValue::from_static("1"));
        assert_eq!(header_list_size(&headers), (3 + 5 + 32) + (3 + 1 + 32));
    }
}
