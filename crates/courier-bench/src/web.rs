//! gRPC-Web against gRPC on the same Courier server: unary Hello and ReceiveMessage, each played
//! over gRPC (HTTP/2), gRPC-Web over HTTP/1.1 and gRPC-Web over HTTP/2, with the same client.
//!
//! The client is tonic's generated one, with the harness's metadata ([`as_user`]: a bearer
//! token, `from` and a fresh `x-request-id` per call), over hyper's client connections
//! (`hyper::client::conn`, `TCP_NODELAY`, no pool). For gRPC-Web, tonic-web's
//! [`GrpcWebClientLayer`](tonic_web::GrpcWebClientLayer) sits between the two: it rewrites each
//! request to `content-type: application/grpc-web` and reads the trailers out of the answer's
//! last frame. So the two protocols share everything on the client but that layer and, over
//! HTTP/1.1, the HTTP version; the server does the translation (tonic-web's `GrpcWebService`
//! behind Courier's `WebLayer`) and everything else the same way for both. No Rust gRPC-Web
//! client library is needed beyond that layer: the framing is tonic-web's own.
//!
//! Concurrency is the same for all three: [`IN_FLIGHT`] unary calls, or one task per
//! ReceiveMessage stream. HTTP/2 spreads them over [`CONNECTIONS`] connections; HTTP/1.1 carries
//! one call at a time per connection, so each task has its own keep-alive connection, opened
//! before the measurement. A connection that was not kept alive fails the next call, which
//! fails the run.
//!
//! (hyper-util's pooled client, `hyper_util::client::legacy::Client`, works under the same layer,
//! but over HTTP/1.1 it opens a second connection for a call that comes before the first one is
//! back in the pool, and spawns a task per call to put it back: about two connections per task,
//! and client work gRPC does not have.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier_client::pb::hello::HelloRequest;
use courier_client::pb::hello::say_hello_service_client::SayHelloServiceClient;
use courier_client::pb::message::ReceiveMessageRequest;
use courier_client::pb::message::message_service_client::MessageServiceClient;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tonic::body::Body as TonicBody;
use tonic::service::interceptor::InterceptedService;
use tonic_web::{GrpcWebCall, GrpcWebClientService};

use crate::{
    CONNECTIONS, IN_FLIGHT, Measurement, ServerChild, as_user, fill_queues, histogram,
    measurement_since, receiver,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How the client speaks to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC: HTTP/2 (prior knowledge, plaintext).
    Grpc,
    /// gRPC-Web in binary form over HTTP/1.1 keep-alive connections.
    WebHttp1,
    /// gRPC-Web in binary form over HTTP/2 (prior knowledge, plaintext).
    WebHttp2,
}

impl Protocol {
    /// All three, gRPC first.
    pub const ALL: [Self; 3] = [Self::Grpc, Self::WebHttp1, Self::WebHttp2];

    /// Its name in the report.
    pub fn label(self) -> &'static str {
        match self {
            Self::Grpc => "gRPC, HTTP/2",
            Self::WebHttp1 => "gRPC-Web, HTTP/1.1",
            Self::WebHttp2 => "gRPC-Web, HTTP/2",
        }
    }

    /// Connections for `concurrent` calls or streams in flight.
    pub fn connections(self, concurrent: usize) -> usize {
        match self {
            Self::WebHttp1 => concurrent,
            Self::Grpc | Self::WebHttp2 => CONNECTIONS.min(concurrent),
        }
    }
}

/// One client connection as the service under tonic's generated client: a request's URI is
/// absolute (the client's origin and the method's path); over HTTP/1.1 it is sent in origin form
/// with a `Host` header, as a browser sends it.
enum HttpConnection<B> {
    Http1 {
        sender: http1::SendRequest<B>,
        host: HeaderValue,
    },
    Http2(http2::SendRequest<B>),
}

impl<B> tower::Service<Request<B>> for HttpConnection<B>
where
    B: http_body::Body + Send + 'static,
{
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Self::Http1 { sender, .. } => sender.poll_ready(cx),
            Self::Http2(sender) => sender.poll_ready(cx),
        }
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self {
            Self::Http1 { sender, host } => {
                if let Some(path) = request.uri().path_and_query() {
                    *request.uri_mut() = Uri::from(path.clone());
                }
                request
                    .headers_mut()
                    .insert(http::header::HOST, host.clone());
                Box::pin(sender.send_request(request))
            }
            Self::Http2(sender) => Box::pin(sender.send_request(request)),
        }
    }
}

/// Client connections to `server`, and the tasks that drive them (aborted when dropped).
struct Connections<B> {
    /// One per task: each its own connection over HTTP/1.1, a share of one over HTTP/2.
    services: Vec<HttpConnection<B>>,
    drivers: Vec<JoinHandle<()>>,
}

impl<B> Drop for Connections<B> {
    fn drop(&mut self) {
        for driver in &self.drivers {
            driver.abort();
        }
    }
}

impl<B> Connections<B>
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// `connections` connections over HTTP/2 shared round-robin by `tasks` tasks, or one
    /// HTTP/1.1 connection per task.
    async fn open(server: &ServerChild, http2: bool, connections: usize, tasks: usize) -> Self {
        let mut opened = Vec::new();
        let mut drivers = Vec::new();
        for _ in 0..connections {
            let tcp = TcpStream::connect(&server.addr).await.expect("connects");
            tcp.set_nodelay(true).expect("sets TCP_NODELAY");
            let io = TokioIo::new(tcp);
            if http2 {
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("HTTP/2 handshake");
                drivers.push(tokio::spawn(async move {
                    let _ = connection.await;
                }));
                opened.push(HttpConnection::Http2(sender));
            } else {
                let (sender, connection) = http1::handshake(io).await.expect("HTTP/1.1 handshake");
                drivers.push(tokio::spawn(async move {
                    let _ = connection.await;
                }));
                let host = HeaderValue::from_str(&server.addr).expect("a valid host");
                opened.push(HttpConnection::Http1 { sender, host });
            }
        }
        let services = if http2 {
            (0..tasks)
                .map(|task| match &opened[task % connections] {
                    HttpConnection::Http2(sender) => HttpConnection::Http2(sender.clone()),
                    HttpConnection::Http1 { .. } => unreachable!("HTTP/2 connections"),
                })
                .collect()
        } else {
            assert_eq!(connections, tasks, "one HTTP/1.1 connection per task");
            opened
        };
        Self { services, drivers }
    }
}

/// Runs `$body` with `$services`, a `Vec` of one HTTP service per task (`$tasks` of them) for
/// tonic's generated clients, speaking `$protocol` (through tonic-web's client layer for
/// gRPC-Web); the connections close when it ends.
macro_rules! with_services {
    ($server:expr, $protocol:expr, $tasks:expr, |$services:ident| $body:expr) => {{
        let connections = $protocol.connections($tasks);
        match $protocol {
            Protocol::Grpc => {
                let mut opened: Connections<TonicBody> =
                    Connections::open($server, true, connections, $tasks).await;
                let $services = std::mem::take(&mut opened.services);
                $body
            }
            protocol @ (Protocol::WebHttp1 | Protocol::WebHttp2) => {
                let http2 = protocol == Protocol::WebHttp2;
                let mut opened: Connections<GrpcWebCall<TonicBody>> =
                    Connections::open($server, http2, connections, $tasks).await;
                let $services: Vec<_> = std::mem::take(&mut opened.services)
                    .into_iter()
                    .map(GrpcWebClientService::new)
                    .collect();
                $body
            }
        }
    }};
}

/// The origin the generated clients put in front of their paths.
fn origin(server: &ServerChild) -> Uri {
    format!("http://{}", server.addr)
        .parse()
        .expect("a valid origin")
}

/// Unary Hello over `protocol` with [`IN_FLIGHT`] calls in flight for `length`.
pub async fn unary(server: &ServerChild, protocol: Protocol, length: Duration) -> Measurement {
    with_services!(server, protocol, IN_FLIGHT, |services| {
        unary_load(server, length, services).await
    })
}

/// ReceiveMessage over `protocol`: `streams` users each have `per_stream` messages queued (over
/// gRPC, not timed), then all are received at once. Latency is the gap between consecutive
/// messages of a stream.
pub async fn receive(
    server: &ServerChild,
    protocol: Protocol,
    streams: usize,
    per_stream: usize,
) -> Measurement {
    let grpc = server.connect(CONNECTIONS).await.expect("connects");
    fill_queues(&grpc, streams, per_stream).await;
    drop(grpc);
    with_services!(server, protocol, streams, |services| {
        receive_load(server, services, per_stream).await
    })
}

async fn unary_load<S, B>(server: &ServerChild, length: Duration, services: Vec<S>) -> Measurement
where
    S: tower::Service<Request<TonicBody>, Response = Response<B>> + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    let cpu_before = server.cpu_time();
    let stop = Instant::now() + length;
    let started = Instant::now();
    let mut workers = Vec::new();
    for service in services {
        let service = InterceptedService::new(service, as_user("u0"));
        let mut client = SayHelloServiceClient::with_origin(service, origin(server));
        workers.push(tokio::spawn(async move {
            let mut latencies = histogram();
            let mut calls = 0_u64;
            while Instant::now() < stop {
                let sent = Instant::now();
                client
                    .hello(HelloRequest {
                        name: "bench".into(),
                    })
                    .await
                    .expect("hello answers");
                latencies
                    .record(sent.elapsed().as_micros() as u64)
                    .expect("in bounds");
                calls += 1;
            }
            (calls, latencies)
        }));
    }
    let mut total = 0;
    let mut latencies = histogram();
    for worker in workers {
        let (calls, histogram) = worker.await.expect("worker runs");
        total += calls;
        latencies.add(histogram).expect("same bounds");
    }
    measurement_since(total, started.elapsed(), &latencies, server, cpu_before)
}

async fn receive_load<S, B>(
    server: &ServerChild,
    services: Vec<S>,
    per_stream: usize,
) -> Measurement
where
    S: tower::Service<Request<TonicBody>, Response = Response<B>> + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    let cpu_before = server.cpu_time();
    let started = Instant::now();
    let streams = services.len();
    let mut workers = Vec::new();
    for (stream, service) in services.into_iter().enumerate() {
        let user = receiver(stream);
        let service = InterceptedService::new(service, as_user(&user));
        let mut client = MessageServiceClient::with_origin(service, origin(server));
        workers.push(tokio::spawn(async move {
            let request = ReceiveMessageRequest {
                user,
                idle_timeout: None,
                after_id: String::new(),
            };
            let mut responses = client
                .receive_message(request)
                .await
                .expect("receive opens")
                .into_inner();
            let mut latencies = histogram();
            let mut last = Instant::now();
            for _ in 0..per_stream {
                responses
                    .message()
                    .await
                    .expect("streams")
                    .expect("not ended");
                latencies
                    .record(last.elapsed().as_micros().max(1) as u64)
                    .expect("in bounds");
                last = Instant::now();
            }
            latencies
        }));
    }
    let mut latencies = histogram();
    for worker in workers {
        latencies
            .add(worker.await.expect("worker runs"))
            .expect("same bounds");
    }
    measurement_since(
        (streams * per_stream) as u64,
        started.elapsed(),
        &latencies,
        server,
        cpu_before,
    )
}

/// The translation alone, in this process, without HTTP: nanoseconds per unary Hello call
/// through Courier's `WebLayer` (tonic-web's translation behind it) around the bare tonic Hello
/// service, for a gRPC request and for the same request in gRPC-Web, each answer read to its
/// end. `blocks` alternating blocks of `calls` calls each; the median block of each.
pub async fn translation_ns(calls: usize, blocks: usize) -> (f64, f64) {
    use courier_server::middleware::web::WebLayer;
    use http_body_util::BodyExt as _;
    use prost::Message as _;
    use tower::{Layer as _, ServiceExt as _};

    let (hello, _, _) = crate::bare::Bare::default().services();
    // As the server builds it, with no CORS origins (as in the harness's server).
    let service =
        WebLayer::new(&[], courier_server::Limits::default().max_header_list_bytes).layer(hello);
    let mut frame = vec![0];
    let payload = HelloRequest {
        name: "bench".into(),
    }
    .encode_to_vec();
    frame.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&payload);
    let frame = Bytes::from(frame);
    let request = |web: bool| {
        let mut request = Request::builder()
            .method(http::Method::POST)
            .uri("/courier.hello.v1.SayHelloService/Hello");
        request = if web {
            request
                .version(http::Version::HTTP_11)
                .header(http::header::CONTENT_TYPE, "application/grpc-web+proto")
                .header("x-grpc-web", "1")
        } else {
            request
                .version(http::Version::HTTP_2)
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header(http::header::TE, "trailers")
        };
        request
            .body(TonicBody::new(http_body_util::Full::new(frame.clone())))
            .expect("a valid request")
    };
    // One call: whether its answer ended with `grpc-status: 0` (in trailers, or in gRPC-Web's
    // trailers frame).
    let call = |web: bool| {
        let service = service.clone();
        let request = request(web);
        async move {
            let response = service.oneshot(request).await.expect("answers");
            let collected = response.into_body().collect().await.expect("a body");
            match collected.trailers() {
                Some(trailers) => trailers.get("grpc-status").is_some_and(|code| code == "0"),
                None => {
                    let body = collected.to_bytes();
                    body.windows(13).any(|window| window == b"grpc-status:0")
                }
            }
        }
    };
    assert!(call(false).await, "the gRPC call succeeds");
    assert!(call(true).await, "the gRPC-Web call succeeds");
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..blocks {
        for (index, web) in [false, true].into_iter().enumerate() {
            let started = Instant::now();
            for _ in 0..calls {
                call(web).await;
            }
            times[index].push(started.elapsed().as_nanos() as f64 / calls as f64);
        }
    }
    let median = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let [grpc, web] = &mut times;
    (median(grpc), median(web))
}
