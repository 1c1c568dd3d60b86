//! Authentication, TLS and mutual TLS against a real server on loopback, and the demo passing
//! with and without them.

mod common;

use common::{JACK_TOKEN, MIKE_TOKEN, Setup, TestServer, message, metadata};
use courier_client::ConnectOptions;
use courier_client::demo::Demo;
use courier_client::pb::hello::HelloRequest;
use courier_client::pb::message::{ReceiveMessageRequest, SendMessageRequest};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn missing_malformed_and_unknown_tokens_are_unauthenticated() {
    let server = TestServer::start(Setup {
        auth: true,
        ..Setup::default()
    })
    .await;
    let connection = server.connect().await;
    let hello = HelloRequest {
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
            .hello(hello.clone())
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
        .receive_message(ReceiveMessageRequest {
            user: "jack".into(),
            idle_timeout: None,
            after_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let reply = connection
        .hello(metadata(Some(JACK_TOKEN), &[]))
        .hello(hello)
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
    // mike's token, claiming to be jack, both in the message and in the `from` metadata.
    let spoof = SendMessageRequest {
        message: Some(message("jack", "mike", "hi")),
    };
    let status = connection
        .messages(metadata(Some(MIKE_TOKEN), &["from:jack"]))
        .send_message(tokio_stream::iter([spoof]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let status = connection
        .messages(metadata(Some(MIKE_TOKEN), &[]))
        .receive_message(ReceiveMessageRequest {
            user: "jack".into(),
            idle_timeout: None,
            after_id: String::new(),
        })
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

/// Whether a Hello over a connection made with `options` succeeds.
async fn hello_succeeds(options: &ConnectOptions) -> bool {
    let Ok(connection) = courier_client::Connection::open(options).await else {
        return false;
    };
    let request = HelloRequest { name: "x".into() };
    connection
        .hello(metadata(None, &[]))
        .hello(request)
        .await
        .is_ok()
}

#[tokio::test]
async fn tls_is_verified_against_the_given_ca() {
    let server = TestServer::start(Setup {
        tls: true,
        ..Setup::default()
    })
    .await;
    let reply = server
        .connect()
        .await
        .hello(metadata(None, &[]))
        .hello(HelloRequest { name: "tls".into() })
        .await;
    assert_eq!(reply.unwrap().into_inner().msg, "hello world! tls");

    // Without our CA the server's certificate is untrusted.
    let untrusted = ConnectOptions {
        ca: None,
        ..server.options()
    };
    assert!(
        !hello_succeeds(&untrusted).await,
        "an untrusted certificate must not be accepted"
    );

    // Plaintext to the TLS port fails instead of hanging.
    let plaintext = ConnectOptions {
        addr: format!("http://{}", server.addr),
        ..ConnectOptions::default()
    };
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        hello_succeeds(&plaintext),
    );
    assert!(!refused.await.expect("answers within 10 s"));
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let server = TestServer::start(Setup {
        mutual_tls: true,
        ..Setup::default()
    })
    .await;
    let (dir, _) = server.pki.as_ref().unwrap();
    let anonymous = server.options();
    assert!(
        !hello_succeeds(&anonymous).await,
        "no client certificate must be refused"
    );

    let identified = ConnectOptions {
        identity: Some((dir.path().join("client.pem"), dir.path().join("client.key"))),
        ..server.options()
    };
    let connection = courier_client::Connection::open(&identified).await.unwrap();
    let reply = connection
        .hello(metadata(None, &[]))
        .hello(HelloRequest {
            name: "mtls".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().msg, "hello world! mtls");
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

    let error = Demo::new(server.connect().await, Default::default())
        .run(&mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "hello: the server answered Unauthenticated: missing authorization metadata"
    );
}
