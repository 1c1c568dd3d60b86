//! Authentication, TLS and mutual TLS against a real server on loopback, and the demo passing
//! with and without them.

use std::error::Error;
use std::time::Duration;

use courier_client::demo::Demo;
use courier_client::pb::hello::HelloRequest;
use courier_client::pb::message::SendMessageRequest;
use courier_client::{ConnectOptions, Connection};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::client::{hello, message, metadata, receive_request};
use crate::helpers::server::{JACK_TOKEN, MIKE_TOKEN, Setup, TestServer};

#[tokio::test]
async fn missing_malformed_and_unknown_tokens_are_unauthenticated() {
    let server = TestServer::start(Setup {
        auth: true,
        ..Setup::default()
    })
    .await;
    let connection = server.connect().await;
    let request = HelloRequest {
        name: "jack".into(),
    };
    let cases = [
        (metadata(None, &[]), "missing authorization metadata"),
        (
            metadata(None, &["authorization:Basic amFjaw=="]),
            "authorization must be `Bearer <token>`",
        ),
        (metadata(Some("not-a-token"), &[]), "unknown token"),
    ];
    for (call, reason) in cases {
        let status = connection
            .hello(call)
            .hello(request.clone())
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::Unauthenticated, reason)
        );
    }
    // Streaming RPCs are covered by the same layer.
    let status = connection
        .messages(metadata(None, &[]))
        .receive_message(receive_request("jack", "", None))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, "missing authorization metadata")
    );

    let reply = connection
        .hello(metadata(Some(JACK_TOKEN), &[]))
        .hello(request)
        .await
        .unwrap();
    assert_eq!(reply.into_inner().msg, "hello world! jack");
}

#[tokio::test]
async fn a_token_for_another_user_is_permission_denied() {
    let server = TestServer::start(Setup {
        auth: true,
        ..Setup::default()
    })
    .await;
    let connection = server.connect().await;
    // mike's token, claiming to be jack, both in the message and in the `from` metadata: the
    // token wins over the metadata.
    let spoof = SendMessageRequest {
        message: Some(message("jack", "mike", "hi")),
    };
    let status = connection
        .messages(metadata(Some(MIKE_TOKEN), &["from:jack"]))
        .send_message(tokio_stream::iter([spoof]))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::PermissionDenied,
            "message.from is \"jack\" but the caller is \"mike\" (0 earlier messages of this stream were queued)"
        )
    );

    let status = connection
        .messages(metadata(Some(MIKE_TOKEN), &[]))
        .receive_message(receive_request("jack", "", None))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::PermissionDenied,
            "\"mike\" may not read the messages of \"jack\""
        )
    );
}

#[tokio::test]
async fn health_and_reflection_need_no_token() {
    let server = TestServer::start(Setup {
        auth: true,
        tls: true,
        ..Setup::default()
    })
    .await;
    let connection = server.connect().await;
    let mut health = HealthClient::new(connection.with(metadata(None, &[])));
    for service in [
        "",
        "courier.hello.v1.SayHelloService",
        "courier.chat.v1.ChatService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(connection.with(metadata(None, &[])));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a list of services");
    };
    // A client resolving the contract's imports by file name, as grpcurl does, finds them.
    for file in [
        "courier/message/v1/message.proto",
        "google/protobuf/timestamp.proto",
        "google/protobuf/duration.proto",
    ] {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileByFilename(file.into())),
        };
        let mut answers = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().unwrap().message_response;
        assert!(
            matches!(answer, Some(MessageResponse::FileDescriptorResponse(_))),
            "{file}: {answer:?}"
        );
    }
    // Some tools only speak v1alpha.
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut alpha = ServerReflectionClient::new(connection.with(metadata(None, &[])));
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "courier.chat.v1.ChatService".into(),
            )),
        };
        let mut answers = alpha
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().unwrap().message_response;
        assert!(
            matches!(answer, Some(MessageResponse::FileDescriptorResponse(_))),
            "{answer:?}"
        );
    }
    let mut names: Vec<_> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "courier.chat.v1.ChatService",
            "courier.hello.v1.SayHelloService",
            "courier.message.v1.MessageService",
            "grpc.reflection.v1.ServerReflection",
        ]
    );
}

/// An error and its sources, one line.
fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        text.push_str(": ");
        text.push_str(&error.to_string());
        source = error.source();
    }
    text
}

/// A Hello over a new connection made with `options`: the greeting, or why there was none
/// (the error and its sources), whether connecting or calling failed.
async fn hello_over(options: &ConnectOptions) -> Result<String, String> {
    let connection = Connection::open(options)
        .await
        .map_err(|error| chain(&error))?;
    hello(&connection, "x")
        .await
        .map_err(|status| chain(&status))
}

#[tokio::test]
async fn tls_is_verified_against_the_given_ca() {
    let server = TestServer::start(Setup {
        tls: true,
        ..Setup::default()
    })
    .await;
    assert_eq!(
        hello(&server.connect().await, "tls").await.unwrap(),
        "hello world! tls"
    );

    // Without our CA the server's certificate is untrusted.
    let untrusted = ConnectOptions {
        ca: None,
        ..server.options()
    };
    let error = hello_over(&untrusted).await.unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");

    // Plaintext to the TLS port fails instead of hanging.
    let plaintext = ConnectOptions {
        addr: format!("http://{}", server.addr),
        ..ConnectOptions::default()
    };
    let error = tokio::time::timeout(Duration::from_secs(10), hello_over(&plaintext))
        .await
        .expect("answers within 10 s")
        .unwrap_err();
    // The TLS side drops the connection; whether the client then sees a broken pipe or a reset
    // depends on timing, so only the connection's failure is checked.
    assert!(
        error.contains("transport error: connection error"),
        "{error}"
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let server = TestServer::start(Setup {
        mutual_tls: true,
        ..Setup::default()
    })
    .await;
    let error = hello_over(&server.options()).await.unwrap_err();
    assert!(
        error.contains("received fatal alert: CertificateRequired"),
        "{error}"
    );

    let dir = server.pki_dir.as_ref().unwrap().path();
    let identified = ConnectOptions {
        identity: Some((dir.join("client.pem"), dir.join("client.key"))),
        ..server.options()
    };
    assert_eq!(hello_over(&identified).await.unwrap(), "hello world! x");
}

#[tokio::test]
async fn the_demo_passes_without_tls_and_auth() {
    let server = TestServer::start(Setup::default()).await;
    let mut transcript = Vec::new();
    Demo::new(server.connect().await, Default::default())
        .run(&mut transcript)
        .await
        .unwrap();
    assert!(
        String::from_utf8(transcript)
            .unwrap()
            .contains("demo passed")
    );
}

#[tokio::test]
async fn the_demo_passes_with_tls_and_auth_and_fails_without_tokens() {
    let server = TestServer::start(Setup {
        tls: true,
        auth: true,
        ..Setup::default()
    })
    .await;
    let tokens = [
        ("jack".to_owned(), JACK_TOKEN.to_owned()),
        ("mike".to_owned(), MIKE_TOKEN.to_owned()),
    ]
    .into();
    let mut transcript = Vec::new();
    Demo::new(server.connect().await, tokens)
        .run(&mut transcript)
        .await
        .unwrap();
    assert!(
        String::from_utf8(transcript)
            .unwrap()
            .contains("demo passed")
    );

    let error = Demo::new(server.connect().await, Default::default())
        .run(&mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "hello: the server answered Unauthenticated: missing authorization metadata"
    );
}
