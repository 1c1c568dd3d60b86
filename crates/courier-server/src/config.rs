//! What a server is configured with: [`Config`] and the [`Limits`] it puts on clients. The
//! binary fills it from its flags; tests and the benchmark build it directly.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::middleware::auth::TokenStore;

/// PEM files for TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Everything a server needs besides its listener.
#[derive(Clone, Debug)]
pub struct Config {
    /// TLS, or plaintext when `None`.
    pub tls: Option<TlsFiles>,
    /// Bearer tokens, or no authentication when `None`.
    pub tokens: Option<Arc<TokenStore>>,
    /// How long open calls get to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// Bounds on what clients may use; see [`Limits`].
    pub limits: Limits,
    /// Directory of the durable message store; in memory (lost on restart) when `None`.
    pub data_dir: Option<PathBuf>,
    /// How long messages are kept, delivered or not, so clients can resume.
    pub retention: Duration,
    /// Web origins whose pages may call the server (CORS); none by default, so that only a page
    /// the server itself serves (same origin, no CORS) can.
    pub cors_origins: Vec<CorsOrigin>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tls: None,
            tokens: None,
            shutdown_grace: Duration::from_secs(10),
            limits: Limits::default(),
            data_dir: None,
            retention: DEFAULT_RETENTION,
            cors_origins: Vec::new(),
        }
    }
}

/// Messages are kept a week by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The default of [`Limits::max_connections`]: 1,000.
///
/// Every other limit is per call or per connection, so without this one a client could hold any
/// number of idle connections, each costing a file descriptor and HTTP/2 (and TLS) buffers. 1,000
/// stays under the soft open-file limit most systems start a process with (1,024), with room left
/// for the store's and the log's descriptors: the server refuses a connection itself instead of
/// `accept` failing with "too many open files" for everyone. gRPC clients multiplex their calls
/// over one connection (up to `max_concurrent_streams` each), so 1,000 connections carry far more
/// calls than `max_calls` lets run. Raise it together with `ulimit -n`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1_000;

/// Every bound the server puts on its clients. The defaults are the README's; each is a
/// command-line flag of `courier-server`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, TLS handshakes included; see [`DEFAULT_MAX_CONNECTIONS`] for the
    /// default and why. A connection over it is accepted and closed at once with a TCP reset,
    /// before any byte of HTTP/2: a gRPC client sees UNAVAILABLE. The count goes down when a
    /// connection's socket is closed.
    pub max_connections: usize,
    /// Largest message accepted or sent, in bytes, also after decompression.
    pub max_message_bytes: usize,
    /// Concurrent HTTP/2 streams per connection (tonic's default is unlimited).
    pub max_concurrent_streams: u32,
    /// Streams a connection may make the server reset before it is closed (tonic's default is
    /// unlimited; this is the rapid-reset defence).
    pub max_local_error_reset_streams: usize,
    /// Largest request header list, in bytes.
    pub max_header_list_bytes: u32,
    /// Calls being handled at once per connection; more are shed with RESOURCE_EXHAUSTED.
    pub max_calls_per_connection: usize,
    /// Calls being handled at once across the server; more are shed with RESOURCE_EXHAUSTED.
    pub max_calls: usize,
    /// Open ReceiveMessage and Chat streams across the server; more get RESOURCE_EXHAUSTED.
    pub max_open_streams: usize,
    /// Messages waiting for one user; a full queue answers RESOURCE_EXHAUSTED.
    pub max_queued_per_user: usize,
    /// Longest a handler may take to answer; tonic then answers CANCELLED ("Timeout expired").
    /// A shorter `grpc-timeout` from the client wins. Streams only need to start within it.
    pub call_timeout: Duration,
    /// Interval of HTTP/2 pings on idle connections.
    pub http2_keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub http2_keepalive_timeout: Duration,
    /// TCP keepalive on accepted sockets.
    pub tcp_keepalive: Duration,
    /// Longest a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// Connections are gracefully closed (GOAWAY) after this age, so clients rebalance.
    pub max_connection_age: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 256,
            max_local_error_reset_streams: 1024,
            max_header_list_bytes: 16 * 1024,
            max_calls_per_connection: 256,
            max_calls: 4096,
            max_open_streams: 10_000,
            max_queued_per_user: 10_000,
            call_timeout: Duration::from_secs(30),
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            tcp_keepalive: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(60 * 60),
        }
    }
}

/// A web origin allowed to call the server from a browser: `scheme://host[:port]`, as browsers
/// send it in `Origin` (`https://chat.example.com`, `http://localhost:8080`).
///
/// Parsing checks that it is one: the scheme is `http` or `https`, there is a host, and nothing
/// follows the port (no path, not even `/`, no query, no user). The scheme and host are
/// lowercased and a default port (80 for http, 443 for https) dropped, as browsers do, so that
/// what is listed is what they send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsOrigin(HeaderValue);

impl CorsOrigin {
    /// The origin as `Origin` carries it.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Display for CorsOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Built from a `String`: always text.
        f.write_str(self.0.to_str().unwrap_or_default())
    }
}

/// Why a `--cors-origin` is not an origin.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a web origin: {1}; write scheme://host[:port], e.g. https://chat.example.com"
)]
pub struct CorsOriginError(String, &'static str);

impl FromStr for CorsOrigin {
    type Err = CorsOriginError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |why| CorsOriginError(text.to_owned(), why);
        let (scheme, rest) = text.split_once("://").ok_or_else(|| error("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => "80",
            "https" => "443",
            _ => return Err(error("the scheme must be http or https")),
        };
        if rest.contains(['/', '?', '#']) {
            return Err(error(
                "an origin has no path, query or fragment (not even a final /)",
            ));
        }
        if rest.contains('@') {
            return Err(error("an origin has no user name or password"));
        }
        // A bracketed IPv6 address, or a name or IPv4 address (which hold no ':').
        let (host, port) = match rest.strip_prefix('[') {
            Some(bracketed) => {
                let (address, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| error("the host is not an IPv6 address"))?;
                address
                    .parse::<std::net::Ipv6Addr>()
                    .map_err(|_| error("the host is not an IPv6 address"))?;
                let port = match after {
                    "" => None,
                    _ => Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| error("the host is malformed"))?,
                    ),
                };
                (format!("[{}]", address.to_ascii_lowercase()), port)
            }
            None => {
                let (host, port) = match rest.split_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (rest, None),
                };
                if host.is_empty() {
                    return Err(error("there is no host"));
                }
                if !host
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.')
                {
                    return Err(error(
                        "the host may hold only letters, digits, '-' and '.' (punycode for other names)",
                    ));
                }
                (host.to_ascii_lowercase(), port)
            }
        };
        let port = port
            .map(|port| {
                port.bytes()
                    .all(|byte| byte.is_ascii_digit())
                    .then(|| port.parse::<u16>().ok())
                    .flatten()
                    .ok_or_else(|| error("the port is not a number from 0 to 65535"))
            })
            .transpose()?
            .map(|port| port.to_string());
        let origin = match port {
            Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
            _ => format!("{scheme}://{host}"),
        };
        HeaderValue::try_from(origin)
            .map(Self)
            .map_err(|_| error("it holds characters a header cannot"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<String, String> {
        text.parse::<CorsOrigin>()
            .map(|origin| origin.to_string())
            .map_err(|error| error.to_string())
    }

    #[test]
    fn origins_are_taken_as_browsers_send_them() {
        for (given, origin) in [
            ("https://chat.example.com", "https://chat.example.com"),
            ("http://localhost:8080", "http://localhost:8080"),
            ("HTTPS://Chat.Example.COM", "https://chat.example.com"),
            ("https://chat.example.com:443", "https://chat.example.com"),
            ("http://127.0.0.1:80", "http://127.0.0.1"),
            ("http://127.0.0.1:443", "http://127.0.0.1:443"),
            ("http://[::1]:5173", "http://[::1]:5173"),
        ] {
            assert_eq!(parsed(given).as_deref(), Ok(origin), "{given}");
        }
    }

    #[test]
    fn what_is_no_origin_is_refused_saying_why() {
        for (given, why) in [
            ("chat.example.com", "no scheme"),
            ("*", "no scheme"),
            ("null", "no scheme"),
            ("ftp://example.com", "the scheme must be http or https"),
            ("https://example.com/", "no path"),
            ("https://example.com/app", "no path"),
            ("https://example.com?x=1", "no path"),
            ("https://user@example.com", "no user name"),
            ("https://", "there is no host"),
            ("https://:8080", "there is no host"),
            ("https://example.com:", "the port is not a number"),
            ("https://example.com:99999", "the port is not a number"),
            ("https://example.com:+80", "the port is not a number"),
            ("https://example.com:http", "the port is not a number"),
            ("https://example.com:80:80", "the port is not a number"),
            ("http://[nope]:80", "not an IPv6 address"),
            ("http://[::1]80", "the host is malformed"),
            ("https://exa mple.com", "may hold only letters"),
            ("https://bücher.example", "may hold only letters"),
        ] {
            let error = parsed(given).unwrap_err();
            assert!(error.contains(why), "{given}: {error}");
            assert!(error.contains("scheme://host[:port]"), "{given}: {error}");
        }
    }
}
