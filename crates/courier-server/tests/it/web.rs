//! gRPC-Web on the gRPC port, spoken by hand (README, "gRPC-Web and CORS"): unary and
//! server-streaming calls in binary and text form over HTTP/1.1 and HTTP/2, plaintext and TLS;
//! the limits, authentication, shedding and the request id applied as to gRPC; bad input
//! answered; CORS for listed origins only.

use std::time::Duration;

use bytes::Bytes;
use courier_client::pb::hello::{HelloRequest, HelloResponse};
use courier_client::pb::message::{ReceiveMessageResponse, SendMessageRequest};
use courier_server::Limits;
use http::{Method, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::helpers::client::{OVERSIZED_MESSAGE, busy_call, message, receive_request, send_texts};
use crate::helpers::raw::{HELLO, RECEIVE, SEND};
use crate::helpers::server::{JACK_TOKEN, Setup, TestServer};
use crate::helpers::web::{
    Form, RequestBody, WebAnswer, WebClient, message_frame, tls_connect, web_request, whole,
};

/// A listed origin, and one that is not.
const PAGE: &str = "https://chat.example.com";
const STRANGER: &str = "https://evil.example.com";

/// The preflight's and the answers' CORS headers for [`PAGE`] (README, "gRPC-Web and CORS").
const ALLOWED_HEADERS: &str =
    "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout,x-request-id";
const EXPOSED_HEADERS: &str =
    "grpc-status,grpc-message,grpc-status-details-bin,x-request-id,x-message-count";

/// The protocols a client offers in ALPN.
type AlpnOffer = &'static [&'static [u8]];

/// A Hello call's body: one frame.
fn hello_frame(name: &str) -> Vec<u8> {
    message_frame(&HelloRequest { name: name.into() }.encode_to_vec())
}

/// A Hello call in `form` with `headers`.
fn hello_request(form: Form, name: &str, headers: &[(&str, &str)]) -> Request<RequestBody> {
    web_request(HELLO, form, &hello_frame(name), headers)
}

/// Asserts that `answer` is Hello's greeting of `name` in `form`, OK.
fn assert_greeted(answer: &WebAnswer, form: Form, name: &str) {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some(form.answer_content_type())
    );
    assert_eq!(answer.messages.len(), 1, "{answer:?}");
    let reply = HelloResponse::decode(answer.messages[0].clone()).unwrap();
    assert_eq!(reply.msg, format!("hello world! {name}"));
    assert_eq!(answer.grpc_status(), (Code::Ok, String::new()));
}

/// Asserts that the server answers a gRPC-Web Hello over HTTP/1.1 on a new connection.
async fn assert_web_hello_works(server: &TestServer) {
    let mut client = WebClient::http1(server.addr).await;
    let answer = client
        .call(hello_request(Form::Binary, "still here", &[]))
        .await;
    assert_greeted(&answer, Form::Binary, "still here");
}

#[tokio::test]
async fn unary_hello_over_http1_in_binary_and_text() {
    let server = TestServer::start(Setup::default()).await;
    let mut client = WebClient::http1(server.addr).await;
    for form in [Form::Binary, Form::Text] {
        let answer = client
            .call(hello_request(
                form,
                "web",
                &[("x-request-id", "web-call-1")],
            ))
            .await;
        assert_greeted(&answer, form, "web");
        // The trailers come in the body: only grpc-status 0 (no grpc-message when empty).
        let trailers = answer.trailers.as_ref().unwrap();
        assert_eq!(trailers.len(), 1, "{trailers:?}");
        assert_eq!(answer.trailer("grpc-status"), Some("0"));
        // The request-id layers saw the call.
        assert_eq!(answer.header("x-request-id"), Some("web-call-1"));
        // No Origin: no CORS headers.
        assert_eq!(answer.cors_headers(), Vec::<&str>::new());
    }
    // Without one, the server makes a request id.
    let answer = client.call(hello_request(Form::Binary, "id", &[])).await;
    assert_eq!(
        answer.header("x-request-id").unwrap().len(),
        36,
        "{answer:?}"
    );
}

#[tokio::test]
async fn receive_message_streams_over_http1_in_binary_and_text() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    for (form, user) in [(Form::Binary, "mike"), (Form::Text, "lisa")] {
        let texts: Vec<String> = (1..=3).map(|n| format!("{user} {n}")).collect();
        assert_eq!(
            send_texts(&connection, "jack", user, &texts).await.unwrap(),
            3
        );
        let request = receive_request(user, "", Some(Duration::from_millis(300)));
        let mut client = WebClient::http1(server.addr).await;
        let answer = client
            .call(web_request(
                RECEIVE,
                form,
                &message_frame(&request.encode_to_vec()),
                &[("from", user)],
            ))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(
            answer.header("content-type"),
            Some(form.answer_content_type())
        );
        let received: Vec<(String, String, String)> = answer
            .messages
            .iter()
            .map(|payload| {
                let message = ReceiveMessageResponse::decode(payload.clone())
                    .unwrap()
                    .message
                    .unwrap();
                (message.from, message.to, message.content)
            })
            .collect();
        let expected: Vec<(String, String, String)> = texts
            .iter()
            .map(|text| ("jack".into(), user.into(), text.clone()))
            .collect();
        assert_eq!(received, expected);
        assert_eq!(answer.grpc_status(), (Code::Ok, String::new()));
        assert_eq!(answer.trailer("x-message-count"), Some("3"));
    }
}

#[tokio::test]
async fn grpc_web_is_served_over_http2_and_over_tls_with_either_version() {
    let plain = TestServer::start(Setup::default()).await;
    let mut client = WebClient::http2(plain.addr).await;
    for form in [Form::Binary, Form::Text] {
        let answer = client.call(hello_request(form, "h2", &[])).await;
        assert_greeted(&answer, form, "h2");
    }

    let tls = TestServer::start(Setup {
        tls: true,
        ..Setup::default()
    })
    .await;
    // What a browser offers gets HTTP/2; an HTTP/1.1-only client (curl --http1.1, most HTTP
    // libraries) gets HTTP/1.1; so does a client without ALPN.
    let cases: [(AlpnOffer, Option<&[u8]>); 3] = [
        (&[b"h2", b"http/1.1"], Some(b"h2")),
        (&[b"http/1.1"], Some(b"http/1.1")),
        (&[], None),
    ];
    for (offered, agreed) in cases {
        let mut client = WebClient::tls(&tls, offered).await;
        assert_eq!(client.alpn.as_deref(), agreed);
        for form in [Form::Binary, Form::Text] {
            let answer = client.call(hello_request(form, "tls", &[])).await;
            assert_greeted(&answer, form, "tls");
        }
    }
    // A protocol the server does not speak is refused in the handshake.
    let error = tls_connect(&tls, &[b"spdy/3"]).await.unwrap_err();
    assert!(
        error.to_string().contains("NoApplicationProtocol"),
        "{error}"
    );
    // gRPC over TLS is served as before.
    tls.assert_hello_works().await;
}

#[tokio::test]
async fn authentication_applies_to_grpc_web() {
    let server = TestServer::start(Setup {
        auth: true,
        ..Setup::default()
    })
    .await;
    let mut client = WebClient::http1(server.addr).await;
    let bearer = format!("Bearer {JACK_TOKEN}");
    let cases = [
        (
            None,
            (Code::Unauthenticated, "missing authorization metadata"),
        ),
        (
            Some("Bearer not-a-token"),
            (Code::Unauthenticated, "unknown token"),
        ),
        (Some(bearer.as_str()), (Code::Ok, "")),
    ];
    for (authorization, expected) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let answer = client
            .call(hello_request(Form::Text, "jack", &headers))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.grpc_status(), (expected.0, expected.1.to_owned()));
    }
    // A stream of another user's messages is not jack's to read.
    let request = receive_request("mike", "", Some(Duration::from_millis(100)));
    let answer = client
        .call(web_request(
            RECEIVE,
            Form::Binary,
            &message_frame(&request.encode_to_vec()),
            &[("authorization", &bearer)],
        ))
        .await;
    assert_eq!(answer.grpc_status().0, Code::PermissionDenied, "{answer:?}");
}

#[tokio::test]
async fn an_oversized_grpc_web_message_is_resource_exhausted() {
    let server = TestServer::with_limits(Limits {
        max_message_bytes: 1024,
        ..Limits::default()
    })
    .await;
    let mut client = WebClient::http1(server.addr).await;
    for form in [Form::Binary, Form::Text] {
        let answer = client
            .call(hello_request(form, &"b".repeat(4096), &[]))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        let (code, message) = answer.grpc_status();
        assert_eq!(code, OVERSIZED_MESSAGE, "{message}");
        assert!(message.contains("the limit is: 1024 bytes"), "{message}");
    }
    assert_web_hello_works(&server).await;
}

/// A SendMessage call whose request body stays open: the sender of its frames, and the answer.
async fn open_send(
    server: &TestServer,
    headers: &[(&str, &str)],
) -> (
    mpsc::Sender<Result<Frame<Bytes>, std::convert::Infallible>>,
    tokio::task::JoinHandle<WebAnswer>,
) {
    let (frames, body) = mpsc::channel(4);
    let mut request = Request::builder()
        .method("POST")
        .uri(SEND)
        .header("content-type", Form::Binary.content_type())
        .header("from", "jack");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(StreamBody::new(ReceiverStream::new(body)).boxed())
        .unwrap();
    let first = SendMessageRequest {
        message: Some(message("jack", "mike", "hold")),
    };
    frames
        .send(Ok(Frame::data(Bytes::from(message_frame(
            &first.encode_to_vec(),
        )))))
        .await
        .unwrap();
    let mut client = WebClient::http1(server.addr).await;
    let answer = tokio::spawn(async move { client.call(request).await });
    (frames, answer)
}

#[tokio::test]
async fn a_grpc_web_call_past_its_deadline_is_answered_in_grpc_web() {
    let server = TestServer::start(Setup {
        limits: Some(Limits {
            call_timeout: Duration::from_millis(300),
            ..Limits::default()
        }),
        cors_origins: vec![PAGE],
        ..Setup::default()
    })
    .await;
    // The server's call timeout, and a client's shorter grpc-timeout (cut 5 ms early, so that
    // the server's translated answer wins over tonic's own timer: deadline::AHEAD_OF_TONIC).
    for (grpc_timeout, at_least, below) in [(None, 300, 2_000), (Some("100m"), 95, 300)] {
        let mut headers = vec![("origin", PAGE)];
        headers.extend(grpc_timeout.map(|value| ("grpc-timeout", value)));
        let started = std::time::Instant::now();
        let (_frames, answer) = open_send(&server, &headers).await;
        let answer = answer.await.unwrap();
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(at_least) && elapsed < Duration::from_millis(below),
            "{grpc_timeout:?}: {elapsed:?}"
        );
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        // Translated and given CORS headers like any answer: a browser can read it.
        assert_eq!(
            answer.header("content-type"),
            Some(Form::Binary.answer_content_type())
        );
        assert_eq!(answer.header("access-control-allow-origin"), Some(PAGE));
        assert_eq!(
            answer.grpc_status(),
            (Code::Cancelled, "Timeout expired".to_owned())
        );
    }
    assert_web_hello_works(&server).await;
}

#[tokio::test]
async fn grpc_web_calls_are_shed_with_grpc_calls() {
    let server = TestServer::with_limits(Limits {
        max_calls: 1,
        ..Limits::default()
    })
    .await;
    let connection = server.connect().await;
    // A gRPC call holds the server's only place; a gRPC-Web call is shed.
    let (finish, call) = busy_call(&connection).await;
    let mut client = WebClient::http1(server.addr).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let shed = loop {
        let answer = client.call(hello_request(Form::Binary, "shed", &[])).await;
        if answer.grpc_status().0 != Code::Ok {
            break answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "never shed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        shed.grpc_status(),
        (
            Code::ResourceExhausted,
            courier_server::middleware::shed::SERVER_BUSY.to_owned()
        )
    );
    drop(finish);
    assert_eq!(call.await.unwrap().unwrap(), 1);

    // And a gRPC-Web call holds a place as a gRPC call does.
    let (frames, answer) = open_send(&server, &[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match crate::helpers::client::hello(&connection, "shed").await {
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                break;
            }
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(_) => panic!("a gRPC call was never shed while a gRPC-Web call was open"),
        }
    }
    drop(frames);
    let answer = answer.await.unwrap();
    assert_eq!(answer.grpc_status(), (Code::Ok, String::new()));
    assert_web_hello_works(&server).await;
}

#[tokio::test]
async fn bad_grpc_web_input_is_answered_and_the_server_goes_on() {
    let server = TestServer::start(Setup::default()).await;
    let mut client = WebClient::http1(server.addr).await;
    let hello = hello_frame("x");

    // Text that is not base64.
    let request = Request::builder()
        .method("POST")
        .uri(HELLO)
        .header("content-type", "application/grpc-web-text")
        .body(whole("AAAA*not base64*"))
        .unwrap();
    let answer = client.call(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let (code, message) = answer.grpc_status();
    assert_eq!(code, Code::Internal, "{message}");
    assert!(message.starts_with("tonic-web: "), "{message}");

    // A frame whose length says more than comes.
    let mut truncated = hello.clone();
    truncated[4] += 10;
    for form in [Form::Binary, Form::Text] {
        let answer = client.call(web_request(HELLO, form, &truncated, &[])).await;
        assert_eq!(
            answer.grpc_status(),
            (Code::Internal, "Unexpected EOF decoding stream.".to_owned()),
            "{form:?}"
        );
    }
    // Half a frame header.
    let answer = client
        .call(web_request(HELLO, Form::Binary, &hello[..3], &[]))
        .await;
    assert_eq!(
        answer.grpc_status(),
        (Code::Internal, "Unexpected EOF decoding stream.".to_owned())
    );

    // A content type that is not gRPC-Web's: 400 from tonic-web, before any call.
    for content_type in [
        "text/plain",
        "application/json",
        "application/grpc-web+json",
    ] {
        let request = Request::builder()
            .method("POST")
            .uri(HELLO)
            .header("content-type", content_type)
            .body(whole(hello.clone()))
            .unwrap();
        let answer = client.call(request).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{content_type}");
        assert!(answer.messages.is_empty() && answer.trailers.is_none());
    }
    // gRPC-Web's content type with another method than POST: 405.
    let request = Request::builder()
        .method("GET")
        .uri(HELLO)
        .header("content-type", Form::Binary.content_type())
        .body(whole(Bytes::new()))
        .unwrap();
    assert_eq!(
        client.call(request).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );

    // All of it on one connection, still open and serving; and new connections are served.
    let answer = client.call(hello_request(Form::Text, "after", &[])).await;
    assert_greeted(&answer, Form::Text, "after");
    assert!(!client.is_closed());
    assert_web_hello_works(&server).await;
    server.assert_hello_works().await;
}

#[tokio::test]
async fn an_http1_header_list_over_the_limit_is_refused_as_http2_refuses_it() {
    let server = TestServer::with_limits(Limits {
        max_header_list_bytes: 4096,
        ..Limits::default()
    })
    .await;
    let mut client = WebClient::http1(server.addr).await;
    let big = "x".repeat(8192);
    let answer = client
        .call(hello_request(Form::Binary, "big", &[("x-big", &big)]))
        .await;
    assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Just under the limit is served.
    let fits = "x".repeat(3000);
    let answer = client
        .call(hello_request(Form::Binary, "fits", &[("x-fits", &fits)]))
        .await;
    assert_greeted(&answer, Form::Binary, "fits");
}

#[tokio::test]
async fn http1_keeps_connections_alive_within_the_connection_limit() {
    let server = TestServer::with_limits(Limits {
        max_connections: 1,
        ..Limits::default()
    })
    .await;
    // One connection carries call after call.
    let mut first = WebClient::http1(server.addr).await;
    for n in 0..5 {
        let name = format!("call {n}");
        let answer = first.call(hello_request(Form::Binary, &name, &[])).await;
        assert_greeted(&answer, Form::Binary, &name);
    }
    assert!(!first.is_closed());

    // It holds the only place: another connection is reset before any answer.
    let mut second = WebClient::http1(server.addr).await;
    let refused = second
        .send(hello_request(Form::Binary, "second", &[]))
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // The first is unharmed; once it closes, a new connection is served.
    let answer = first.call(hello_request(Form::Binary, "again", &[])).await;
    assert_greeted(&answer, Form::Binary, "again");
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut client = WebClient::http1(server.addr).await;
        match client.send(hello_request(Form::Binary, "new", &[])).await {
            Ok(response) => {
                assert_greeted(&WebAnswer::read(response).await, Form::Binary, "new");
                break;
            }
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never served: {error}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A CORS preflight from `origin` for a gRPC-Web call with the headers a client sends.
fn preflight(origin: &str) -> Request<RequestBody> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(HELLO)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout,x-request-id",
        )
        .body(whole(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn cors_answers_listed_origins_only() {
    let server = TestServer::start(Setup {
        cors_origins: vec![PAGE, "http://localhost:8080"],
        ..Setup::default()
    })
    .await;
    let mut http1 = WebClient::http1(server.addr).await;
    let mut http2 = WebClient::http2(server.addr).await;
    for client in [&mut http1, &mut http2] {
        // A listed origin's preflight allows POST with a gRPC-Web client's headers.
        let answer = client.call(preflight(PAGE)).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.header("access-control-allow-origin"), Some(PAGE));
        assert_eq!(answer.header("access-control-allow-methods"), Some("POST"));
        assert_eq!(
            answer.header("access-control-allow-headers"),
            Some(ALLOWED_HEADERS)
        );
        assert_eq!(answer.header("access-control-max-age"), Some("600"));
        assert_eq!(answer.header("access-control-allow-credentials"), None);
        // Its call is answered with the status headers exposed to the page.
        let answer = client
            .call(hello_request(Form::Text, "page", &[("origin", PAGE)]))
            .await;
        assert_greeted(&answer, Form::Text, "page");
        assert_eq!(answer.header("access-control-allow-origin"), Some(PAGE));
        assert_eq!(
            answer.header("access-control-expose-headers"),
            Some(EXPOSED_HEADERS)
        );
        // The other listed origin is told its own.
        let answer = client.call(preflight("http://localhost:8080")).await;
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some("http://localhost:8080")
        );

        // Another origin's preflight is refused, without a CORS header: the browser sends
        // nothing. Neither an origin differing only in scheme or port is listed.
        for stranger in [
            STRANGER,
            "http://chat.example.com",
            "https://chat.example.com:8443",
        ] {
            let answer = client.call(preflight(stranger)).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{stranger}");
            assert_eq!(answer.cors_headers(), Vec::<&str>::new(), "{stranger}");
        }
        // A call that claims such an origin anyway gets no CORS header (a browser would hide
        // its answer from the page); it is served as for any client without an origin.
        let answer = client
            .call(hello_request(
                Form::Binary,
                "stranger",
                &[("origin", STRANGER)],
            ))
            .await;
        assert_greeted(&answer, Form::Binary, "stranger");
        assert_eq!(answer.cors_headers(), Vec::<&str>::new());
        // OPTIONS without an origin is no preflight.
        let request = Request::builder()
            .method(Method::OPTIONS)
            .uri(HELLO)
            .body(whole(Bytes::new()))
            .unwrap();
        let answer = client.call(request).await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(answer.header("allow"), Some("POST"));
    }

    // gRPC gets no CORS headers, whatever it claims.
    let request = Request::builder()
        .method("POST")
        .uri(HELLO)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("origin", PAGE)
        .body(whole(hello_frame("grpc")))
        .unwrap();
    let response = http2.send(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert!(
        response
            .headers()
            .keys()
            .all(|name| !name.as_str().starts_with("access-control-")),
        "{response:?}"
    );
}

#[tokio::test]
async fn without_listed_origins_no_origin_gets_cors() {
    let server = TestServer::start(Setup::default()).await;
    let mut client = WebClient::http1(server.addr).await;
    let answer = client.call(preflight(PAGE)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.cors_headers(), Vec::<&str>::new());
    let answer = client
        .call(hello_request(Form::Binary, "page", &[("origin", PAGE)]))
        .await;
    assert_greeted(&answer, Form::Binary, "page");
    assert_eq!(answer.cors_headers(), Vec::<&str>::new());
}

#[tokio::test]
async fn shutdown_ends_open_grpc_web_streams_and_idle_http1_connections() {
    let server = TestServer::start(Setup {
        grace: Some(Duration::from_secs(30)),
        ..Setup::default()
    })
    .await;
    // A connection kept alive after its call, idle.
    let mut idle = WebClient::http1(server.addr).await;
    let answer = idle.call(hello_request(Form::Binary, "idle", &[])).await;
    assert_greeted(&answer, Form::Binary, "idle");
    // A stream without an idle timeout, open.
    let mut streaming = WebClient::http1(server.addr).await;
    let request = receive_request("mike", "", None);
    let response = streaming
        .send(web_request(
            RECEIVE,
            Form::Text,
            &message_frame(&request.encode_to_vec()),
            &[("from", "mike")],
        ))
        .await
        .unwrap();

    let stopping = tokio::spawn(server.stop());
    let answer = WebAnswer::read(response).await;
    assert!(answer.messages.is_empty(), "{answer:?}");
    assert_eq!(
        answer.grpc_status(),
        (Code::Unavailable, "server is shutting down".to_owned())
    );
    assert_eq!(answer.trailer("x-message-count"), Some("0"));
    // Neither holds the server for its grace period.
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("stopped within 5 s")
        .unwrap()
        .unwrap();
    assert!(
        idle.is_closed()
            || idle
                .send(hello_request(Form::Binary, "late", &[]))
                .await
                .is_err()
    );
}
