//! The chat page on the gRPC port (README, "The chat page"): `/` and its assets over HTTP/1.1
//! and HTTP/2, plaintext and TLS, with their content types and the security headers; HEAD,
//! revalidation, 404 and 405; gRPC, gRPC-Web and CORS on the same port as before.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use crate::helpers::server::{Setup, TestServer};
use crate::helpers::web::{Form, WebClient, web_request, whole};

/// What every answer of the page carries.
const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// The page's files and their content types.
const ASSETS: [(&str, &str); 4] = [
    ("/", "text/html; charset=utf-8"),
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/app.css", "text/css; charset=utf-8"),
    ("/icon.svg", "image/svg+xml"),
];

/// An answer read to its end.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Page {
    async fn read(response: Response<Incoming>) -> Self {
        let (parts, body) = response.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    fn assert_secured(&self) {
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(self.header(name), Some(value), "{name} in {self:?}");
        }
        assert!(
            !self
                .headers
                .keys()
                .any(|name| name.as_str().starts_with("access-control-")),
            "no CORS headers: {self:?}"
        );
    }
}

fn request(
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Request<crate::helpers::web::RequestBody> {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(whole(Bytes::new())).unwrap()
}

async fn get(client: &mut WebClient, method: Method, path: &str, headers: &[(&str, &str)]) -> Page {
    Page::read(client.send(request(method, path, headers)).await.unwrap()).await
}

/// Every asset with its type, length, validator and the security headers; HEAD alike without
/// the body; a revalidation with the ETag is 304.
async fn assert_page_served(client: &mut WebClient) {
    for (path, content_type) in ASSETS {
        let page = get(client, Method::GET, path, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(page.header("content-type"), Some(content_type), "{path}");
        assert_eq!(page.header("cache-control"), Some("no-cache"), "{path}");
        page.assert_secured();
        assert!(!page.body.is_empty(), "{path}");
        assert_eq!(
            page.header("content-length"),
            Some(page.body.len().to_string().as_str()),
            "{path}"
        );
        let etag = page.header("etag").expect("an ETag").to_owned();

        let head = get(client, Method::HEAD, path, &[]).await;
        assert_eq!(head.status, StatusCode::OK, "{path}");
        assert!(head.body.is_empty(), "HEAD {path}");
        for name in ["content-type", "content-length", "etag"] {
            assert_eq!(head.header(name), page.header(name), "HEAD {path}: {name}");
        }
        head.assert_secured();

        let again = get(client, Method::GET, path, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        again.assert_secured();
        let changed = get(client, Method::GET, path, &[("if-none-match", "\"other\"")]).await;
        assert_eq!(changed.status, StatusCode::OK, "{path}");
    }
    let html = get(client, Method::GET, "/?from=a-link", &[]).await;
    let html = std::str::from_utf8(&html.body).unwrap();
    assert!(html.contains(r#"<script type="module" src="/app.js"></script>"#));
    assert!(html.contains(r#"role="log""#));
}

#[tokio::test]
async fn the_page_is_served_over_http1_and_http2_with_its_headers() {
    let server = TestServer::start(Setup::default()).await;
    assert_page_served(&mut WebClient::http1(server.addr).await).await;
    assert_page_served(&mut WebClient::http2(server.addr).await).await;
}

#[tokio::test]
async fn the_page_is_served_over_tls_with_either_version_and_auth_on() {
    let server = TestServer::start(Setup {
        tls: true,
        auth: true,
        ..Setup::default()
    })
    .await;
    for alpn in [&[b"h2".as_slice()][..], &[b"http/1.1".as_slice()][..]] {
        let mut client = WebClient::tls(&server, alpn).await;
        assert_eq!(client.alpn.as_deref(), Some(alpn[0]));
        // The page needs no token: its calls carry the user's.
        assert_page_served(&mut client).await;
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let server = TestServer::start(Setup::default()).await;
    for mut client in [
        WebClient::http1(server.addr).await,
        WebClient::http2(server.addr).await,
    ] {
        for path in [
            "/index.html",
            "/app.js.map",
            "/favicon.ico",
            "/assets/app.js",
            "/../app.js",
        ] {
            for method in [Method::GET, Method::HEAD] {
                let page = get(&mut client, method.clone(), path, &[]).await;
                assert_eq!(page.status, StatusCode::NOT_FOUND, "{method} {path}");
                assert_eq!(
                    page.header("content-type"),
                    Some("text/plain; charset=utf-8")
                );
                page.assert_secured();
            }
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            for (path, _) in ASSETS {
                let page = get(
                    &mut client,
                    method.clone(),
                    path,
                    &[("content-type", "application/x-www-form-urlencoded")],
                )
                .await;
                assert_eq!(
                    page.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                assert_eq!(page.header("allow"), Some("GET, HEAD"));
                page.assert_secured();
            }
        }
        // Still serving on the same connection.
        let page = get(&mut client, Method::GET, "/", &[]).await;
        assert_eq!(page.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn grpc_grpc_web_and_cors_are_answered_as_before_beside_the_page() {
    let server = TestServer::start(Setup {
        cors_origins: vec!["https://chat.example.com"],
        ..Setup::default()
    })
    .await;
    let mut http1 = WebClient::http1(server.addr).await;
    // A gRPC-Web call, on the connection that just fetched the page.
    assert_eq!(
        get(&mut http1, Method::GET, "/", &[]).await.status,
        StatusCode::OK
    );
    let hello = crate::helpers::web::message_frame(&prost::Message::encode_to_vec(
        &courier_client::pb::hello::HelloRequest {
            name: "page".into(),
        },
    ));
    let answer = http1
        .call(web_request(
            crate::helpers::raw::HELLO,
            Form::Binary,
            &hello,
            &[],
        ))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.grpc_status().0, tonic::Code::Ok);
    // gRPC-Web's content type with GET is still tonic-web's 405, not the page's.
    let page = get(
        &mut http1,
        Method::GET,
        crate::helpers::raw::HELLO,
        &[("content-type", Form::Binary.content_type())],
    )
    .await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(page.header("content-security-policy"), None);
    // A POST that is no gRPC-Web call, to a method's path: tonic-web's 400 as before.
    let page = get(
        &mut http1,
        Method::POST,
        crate::helpers::raw::HELLO,
        &[("content-type", "text/plain")],
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    // A preflight is CORS's, whatever its path; the page never answers OPTIONS.
    let preflight = get(
        &mut http1,
        Method::OPTIONS,
        "/",
        &[
            ("origin", "https://chat.example.com"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert_eq!(preflight.status, StatusCode::OK);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://chat.example.com")
    );
    // The page itself, asked for from any origin, carries no CORS headers.
    for origin in ["https://chat.example.com", "https://evil.example.com"] {
        let page = get(&mut http1, Method::GET, "/app.js", &[("origin", origin)]).await;
        assert_eq!(page.status, StatusCode::OK);
        page.assert_secured();
    }
    // gRPC over HTTP/2 on the same port.
    server.assert_hello_works().await;
}
