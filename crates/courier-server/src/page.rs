//! The chat page, served on the gRPC port: `/` and its assets, built from `web/` (TypeScript
//! over the `courier-proto` npm package and Connect's gRPC-Web transport, bundled by esbuild;
//! `make web`) into `crates/courier-server/assets/`, which is committed and embedded here, so
//! `cargo build` alone gives a server that serves the page. `make check-web` rebuilds it into a
//! scratch folder and fails if the committed copy differs.
//!
//! [`serves`] picks the page's requests before the gRPC-Web translation (which answers any other
//! HTTP/1.1 request 400) and before the gRPC router: GET and HEAD without a gRPC content type,
//! and any other method on one of the page's paths (answered 405). The page's calls are
//! gRPC-Web POSTs to its own origin, so they need no CORS.
//!
//! Every answer, 404 and 405 included, carries a Content-Security-Policy that allows only the
//! page's own scripts, styles, images and connections ([`CONTENT_SECURITY_POLICY`]: no inline
//! script or style, no framing, no form submission, no `<base>`), `X-Content-Type-Options:
//! nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and same-origin
//! opener and resource policies. Assets are `Cache-Control: no-cache` with a strong `ETag` (a
//! digest of their bytes), so a browser revalidates and gets 304 while they are unchanged.

use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};

/// The page's Content-Security-Policy: its own origin for everything it loads or calls; no
/// inline scripts or styles, no plugins, no `<base>`, no form submission, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One file of the page.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The page's files, as `make web` wrote them.
const ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../assets/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        path: "/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../assets/icon.svg"),
    },
];

/// The paths the page serves.
pub fn paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|asset| asset.path)
}

fn asset(path: &str) -> Option<(usize, &'static Asset)> {
    ASSETS
        .iter()
        .enumerate()
        .find(|(_, asset)| asset.path == path)
}

/// Each asset's `ETag`, computed once: `"` + the first 128 bits of its SHA-256 in hex + `"`.
fn etags() -> &'static [HeaderValue; ASSETS.len()] {
    static ETAGS: OnceLock<[HeaderValue; ASSETS.len()]> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS.each_ref().map(|asset| {
            let digest = Sha256::digest(asset.body);
            let etag = format!("\"{}\"", hex::encode(&digest[..16]));
            HeaderValue::try_from(etag).expect("hex is a valid header value")
        })
    })
}

/// Whether `request` is the page's (see the [module](self)): not OPTIONS, no gRPC or gRPC-Web
/// content type, and GET or HEAD or one of the page's paths.
pub fn serves<B>(request: &Request<B>) -> bool {
    let method = request.method();
    if method == Method::OPTIONS {
        return false;
    }
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    !grpc
        && (method == Method::GET
            || method == Method::HEAD
            || asset(request.uri().path()).is_some())
}

/// Whether `if_none_match` (an `If-None-Match` header) names `etag` or is `*`.
fn matches(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    list.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// The answer to a request [`serves`] picked: the asset, 304, 404 or 405. A HEAD answer has
/// the headers of the GET one and no body.
pub fn answer<B>(request: &Request<B>) -> Response<Bytes> {
    let method = request.method();
    let found = asset(request.uri().path());
    let head = method == Method::HEAD;
    let mut response = if method != Method::GET && !head {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n",
            false,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        response
    } else if let Some((index, asset)) = found {
        let etag = &etags()[index];
        let fresh = request
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .any(|value| matches(value, etag));
        let mut response = if fresh {
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            sized(
                StatusCode::OK,
                asset.content_type,
                Bytes::from_static(asset.body),
                head,
            )
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, etag.clone());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    } else {
        text(StatusCode::NOT_FOUND, "not found\n", head)
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ] {
        headers.insert(name, value);
    }
    response
}

/// A plain-text answer.
fn text(status: StatusCode, body: &'static str, head: bool) -> Response<Bytes> {
    sized(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
        head,
    )
}

/// An answer of `body` with its type and length; without the body for HEAD.
fn sized(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    head: bool,
) -> Response<Bytes> {
    let length = HeaderValue::from(body.len());
    let mut response = Response::new(if head { Bytes::new() } else { body });
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, length);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, content_type: Option<&str>) -> Request<()> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.body(()).unwrap()
    }

    #[test]
    fn the_page_takes_gets_and_its_own_paths_but_no_grpc() {
        assert!(serves(&request(Method::GET, "/", None)));
        assert!(serves(&request(Method::HEAD, "/app.js", None)));
        assert!(serves(&request(Method::GET, "/nowhere", None)));
        assert!(serves(&request(Method::POST, "/", Some("text/plain"))));
        assert!(serves(&request(Method::PUT, "/app.css", None)));
        // Not the page's: gRPC and gRPC-Web calls, preflights, other methods elsewhere.
        let hello = "/courier.hello.v1.SayHelloService/Hello";
        assert!(!serves(&request(
            Method::POST,
            hello,
            Some("application/grpc")
        )));
        assert!(!serves(&request(
            Method::POST,
            hello,
            Some("application/grpc-web+proto")
        )));
        assert!(!serves(&request(
            Method::GET,
            hello,
            Some("application/grpc-web")
        )));
        assert!(!serves(&request(Method::POST, hello, Some("text/plain"))));
        assert!(!serves(&request(Method::OPTIONS, "/", None)));
        assert!(!serves(&request(
            Method::POST,
            "/",
            Some("application/grpc")
        )));
    }

    #[test]
    fn etags_name_the_bytes_and_if_none_match_is_read_as_a_list() {
        let etag = &etags()[0];
        assert_eq!(etag.len(), 34);
        assert_ne!(etags()[0], etags()[1]);
        let value = |text: &str| HeaderValue::from_str(text).unwrap();
        assert!(matches(etag, etag));
        assert!(matches(&value("*"), etag));
        let listed = format!("\"other\", W/{}", etag.to_str().unwrap());
        assert!(matches(&value(&listed), etag));
        assert!(!matches(&value("\"other\""), etag));
    }

    #[test]
    fn the_html_loads_only_external_scripts_and_styles() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(html.contains(r#"<script type="module" src="/app.js"></script>"#));
        // An inline script, style or handler would be refused by the policy.
        for inline in [
            "<script>",
            "<style",
            " style=",
            " onclick=",
            " onload=",
            "javascript:",
        ] {
            assert!(!html.contains(inline), "{inline}");
        }
        for path in paths().skip(1) {
            assert!(html.contains(&format!("\"{path}\"")), "{path} is not used");
        }
    }
}
