//! Load shedding: [`ShedLayer`] answers RESOURCE_EXHAUSTED at once, never queueing, to a call
//! that finds [`Limits::max_calls`] calls in progress on the server or
//! [`Limits::max_calls_per_connection`] on its connection. Health checks and reflection
//! (`middleware::is_public`) are never shed and never counted, so a probe tells the truth exactly when the
//! server is overloaded.
//!
//! Written by hand because tower's limit layers cannot exempt routes: `ConcurrencyLimit` (and
//! tonic's `concurrency_limit_per_connection`, which is the same layer) limits every request of
//! the service it wraps, and `LoadShed` sheds whatever it limits. This layer takes both places:
//! a call holds a place in each budget from its arrival until its response future resolves
//! (until the response headers are ready, as tower's limit does; a response stream holds none
//! while it streams).
//!
//! tonic builds the `Server::layer` stack once, not per connection: in tonic 0.14.9
//! (`transport/server/mod.rs`), `serve_with_incoming_shutdown` wraps the routes in the stack
//! once, `MakeSvc::call` clones the result for each connection and hyper-util clones that for
//! each request. So no layer has state of its own per connection; connections are told apart by
//! the local and remote addresses tonic puts into every request's extensions
//! (`TcpConnectInfo`, also under TLS). A request without them counts against the server's
//! budget only.
//!
//! Shed calls are counted ([`ShedLayer::shed_calls`]) and reported at info, at most once every
//! [`REPORT_INTERVAL`]: "shed N calls since the last report (total T)". Not a line per call:
//! under overload that would be a flood of lines exactly when the server has least to spare
//! (the trace layer, inside this one, never sees a shed call). Not a warning: the limit working
//! as configured is no fault of the server, any client can make it happen at will, and the
//! client gets a code it may retry.
//!
//! [`Limits::max_calls`]: crate::Limits::max_calls
//! [`Limits::max_calls_per_connection`]: crate::Limits::max_calls_per_connection

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use super::is_public;

/// Shortest time between two reports of shed calls.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What a call shed by the server's limit is told.
pub const SERVER_BUSY: &str = "the server is handling too many calls; retry later";

/// What a call shed by its connection's limit is told.
pub const CONNECTION_BUSY: &str = "too many calls in progress on this connection; retry later";

/// Shards of the calls-per-connection table, so that calls on different connections seldom
/// wait for the same lock.
const SHARDS: usize = 16;

/// A connection: its local and remote addresses.
type Connection = (Option<SocketAddr>, SocketAddr);

/// Sheds calls beyond the server's and their connection's budgets; see the [module](self).
/// Clones share the budgets and counters.
#[derive(Clone, Debug)]
pub struct ShedLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    max_calls: usize,
    max_calls_per_connection: usize,
    /// Calls holding a place in the server's budget.
    in_progress: AtomicUsize,
    /// Calls in progress by connection; a connection with none has no entry.
    connections: [Mutex<HashMap<Connection, usize>>; SHARDS],
    /// Calls shed by the server's budget, ever.
    shed_by_server: AtomicU64,
    /// Calls shed by their connection's budget, ever.
    shed_by_connection: AtomicU64,
    /// Calls shed since the last report.
    unreported: AtomicU64,
    /// Whether a reporting task is running.
    reporting: AtomicBool,
}

impl ShedLayer {
    /// Lets `max_calls` calls be in progress at once on the server and
    /// `max_calls_per_connection` on each connection.
    pub fn new(max_calls: usize, max_calls_per_connection: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                max_calls,
                max_calls_per_connection,
                in_progress: AtomicUsize::new(0),
                connections: std::array::from_fn(|_| Mutex::default()),
                shed_by_server: AtomicU64::new(0),
                shed_by_connection: AtomicU64::new(0),
                unreported: AtomicU64::new(0),
                reporting: AtomicBool::new(false),
            }),
        }
    }

    /// Calls shed so far: by the server's budget, by their connection's.
    pub fn shed_calls(&self) -> ShedCalls {
        self.shared.shed_calls()
    }
}

/// How many calls were shed, by the budget that shed them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShedCalls {
    /// Shed because the server had `max_calls` in progress.
    pub by_server: u64,
    /// Shed because their connection had `max_calls_per_connection` in progress.
    pub by_connection: u64,
}

impl ShedCalls {
    /// Both together.
    pub fn total(self) -> u64 {
        self.by_server + self.by_connection
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`ShedLayer`].
#[derive(Clone, Debug)]
pub struct Shed<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Which budget shed a call.
#[derive(Clone, Copy, Debug)]
enum Budget {
    Server,
    Connection,
}

impl Shared {
    fn shed_calls(&self) -> ShedCalls {
        ShedCalls {
            by_server: self.shed_by_server.load(Ordering::Relaxed),
            by_connection: self.shed_by_connection.load(Ordering::Relaxed),
        }
    }

    fn shard(&self, connection: &Connection) -> &Mutex<HashMap<Connection, usize>> {
        &self.connections[usize::from(connection.1.port()) % SHARDS]
    }

    /// A place in the server's budget and in `connection`'s, or the budget that has none.
    fn admit(self: &Arc<Self>, connection: Option<Connection>) -> Result<Place, Budget> {
        let max_calls = self.max_calls;
        self.in_progress
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |calls| {
                (calls < max_calls).then_some(calls + 1)
            })
            .map_err(|_| Budget::Server)?;
        // From here on, dropping the place gives back what it holds.
        let mut place = Place {
            shared: Arc::clone(self),
            connection: None,
        };
        if let Some(connection) = connection {
            let mut calls_by_connection = lock(self.shard(&connection));
            let calls = calls_by_connection.entry(connection).or_insert(0);
            if *calls >= self.max_calls_per_connection {
                if *calls == 0 {
                    calls_by_connection.remove(&connection);
                }
                return Err(Budget::Connection);
            }
            *calls += 1;
            place.connection = Some(connection);
        }
        Ok(place)
    }

    /// Counts a shed call, making sure a report of it will be made.
    fn count(self: &Arc<Self>, budget: Budget) {
        let counter = match budget {
            Budget::Server => &self.shed_by_server,
            Budget::Connection => &self.shed_by_connection,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.unreported.fetch_add(1, Ordering::AcqRel);
        if !self.reporting.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(report(Arc::downgrade(self)))),
                // Outside a runtime nothing reports; the counters still count.
                Err(_) => self.reporting.store(false, Ordering::Release),
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The tables hold plain counts, consistent after any panic.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reports shed calls, at most once every [`REPORT_INTERVAL`], until a whole interval passes
/// without one (or the layer is gone).
async fn report(shared: Weak<Shared>) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let shed = shared.unreported.swap(0, Ordering::AcqRel);
        if shed == 0 {
            shared.reporting.store(false, Ordering::Release);
            // A call shed since the swap may have seen `reporting` still set and left its report
            // to this task: take it over, unless another task already has.
            if shared.unreported.load(Ordering::Acquire) == 0
                || shared.reporting.swap(true, Ordering::AcqRel)
            {
                return;
            }
            continue;
        }
        let calls = shared.shed_calls();
        tracing::info!(
            shed,
            total = calls.total(),
            by_server = calls.by_server,
            by_connection = calls.by_connection,
            "shed {shed} calls since the last report (total {})",
            calls.total()
        );
        drop(shared);
        tokio::time::sleep(REPORT_INTERVAL).await;
    }
}

/// A call's place in the budgets, given back when dropped.
#[derive(Debug)]
struct Place {
    shared: Arc<Shared>,
    connection: Option<Connection>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(connection) = self.connection {
            let mut calls_by_connection = lock(self.shared.shard(&connection));
            if let Some(calls) = calls_by_connection.get_mut(&connection) {
                *calls -= 1;
                if *calls == 0 {
                    calls_by_connection.remove(&connection);
                }
            }
        }
        self.shared.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection `request` came on, if it came over TCP.
fn connection_of<B>(request: &Request<B>) -> Option<Connection> {
    let extensions = request.extensions();
    let info = extensions.get::<TcpConnectInfo>().or_else(|| {
        extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .map(TlsConnectInfo::get_ref)
    })?;
    Some((info.local_addr(), info.remote_addr()?))
}

impl<S, B, ResBody> Service<Request<B>> for Shed<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ShedBody<ResBody>>;
    type Error = S::Error;
    type Future = ShedFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let place = if is_public(request.uri().path()) {
            None
        } else {
            match self.shared.admit(connection_of(&request)) {
                Ok(place) => Some(place),
                Err(budget) => {
                    self.shared.count(budget);
                    let message = match budget {
                        Budget::Server => SERVER_BUSY,
                        Budget::Connection => CONNECTION_BUSY,
                    };
                    return ShedFuture {
                        inner: None,
                        place: None,
                        shed: Some(Status::resource_exhausted(message).into_http()),
                    };
                }
            }
        };
        ShedFuture {
            inner: Some(self.inner.call(request)),
            place,
            shed: None,
        }
    }
}

pin_project! {
    /// The response future of [`Shed`]: the call's, holding its place until it resolves, or a
    /// shed call's answer.
    pub struct ShedFuture<F, B> {
        // The call's own future; none for a shed call.
        #[pin]
        inner: Option<F>,
        // The call's place in the budgets, given back when `inner` resolves.
        place: Option<Place>,
        // A shed call's answer, until it is taken.
        shed: Option<Response<ShedBody<B>>>,
    }
}

impl<F, B, E> Future for ShedFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ShedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let answer = this.shed.take();
            return Poll::Ready(Ok(
                answer.expect("a shed call's future is not polled after it answered")
            ));
        };
        let outcome = ready!(inner.poll(cx));
        drop(this.place.take());
        Poll::Ready(outcome.map(|response| response.map(|body| ShedBody { inner: Some(body) })))
    }
}

pin_project! {
    /// The response body of [`Shed`]: the call's, or none for a shed call.
    pub struct ShedBody<B> {
        #[pin]
        inner: Option<B>,
    }
}

impl<B> Default for ShedBody<B> {
    fn default() -> Self {
        Self { inner: None }
    }
}

impl<B: Body> Body for ShedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().inner.as_pin_mut() {
            Some(inner) => inner.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tokio::sync::oneshot;
    use tonic::body::Body;
    use tower::ServiceExt as _;

    use super::*;
    use crate::logging::capture;

    const HELLO: &str = "/courier.hello.v1.SayHelloService/Hello";
    const HEALTH: &str = "/grpc.health.v1.Health/Check";
    const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

    /// A request for `path` on the connection from `port` (none: not over TCP).
    fn request(path: &str, port: Option<u16>) -> Request<()> {
        let mut request = Request::builder().uri(path).body(()).unwrap();
        if let Some(port) = port {
            request.extensions_mut().insert(TcpConnectInfo {
                local_addr: Some("127.0.0.1:50051".parse().unwrap()),
                remote_addr: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            });
        }
        request
    }

    /// The shed layer over a service of tests.
    type Tested = tower::util::BoxCloneService<Request<()>, Response<ShedBody<Body>>, Infallible>;

    /// Where a held call's release comes out.
    type Held = tokio::sync::mpsc::UnboundedReceiver<oneshot::Sender<()>>;

    /// A service whose calls answer OK once the sender they hand over is used or dropped.
    fn held_calls(layer: &ShedLayer) -> (Tested, Held) {
        let (calls, held) = tokio::sync::mpsc::unbounded_channel();
        let service = layer.layer(tower::service_fn(move |_: Request<()>| {
            let (release, released) = oneshot::channel::<()>();
            calls.send(release).unwrap();
            async move {
                let _ = released.await;
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        }));
        (Tested::new(service), held)
    }

    fn code<B>(response: &Response<B>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .map(|code| code.to_str().unwrap())
    }

    fn message<B>(response: &Response<B>) -> String {
        Status::from_header_map(response.headers())
            .unwrap()
            .message()
            .to_owned()
    }

    #[tokio::test]
    async fn calls_beyond_the_servers_budget_are_shed_at_once_until_one_ends() {
        let layer = ShedLayer::new(2, 10);
        let (service, mut held) = held_calls(&layer);
        let first = tokio::spawn(service.clone().oneshot(request(HELLO, Some(1))));
        let second = tokio::spawn(service.clone().oneshot(request(HELLO, None)));
        let release_first = held.recv().await.unwrap();
        let _release_second = held.recv().await.unwrap();
        for port in [Some(1), Some(2), None] {
            let shed = service.clone().oneshot(request(HELLO, port)).await.unwrap();
            assert_eq!(code(&shed), Some("8"));
            assert_eq!(message(&shed), SERVER_BUSY);
            assert!(http_body::Body::is_end_stream(shed.body()));
        }
        assert_eq!(
            layer.shed_calls(),
            ShedCalls {
                by_server: 3,
                by_connection: 0
            }
        );
        release_first.send(()).unwrap();
        assert_eq!(code(&first.await.unwrap().unwrap()), None);
        let third = tokio::spawn(service.clone().oneshot(request(HELLO, Some(3))));
        drop(held.recv().await.unwrap());
        assert_eq!(code(&third.await.unwrap().unwrap()), None);
        drop(second);
    }

    #[tokio::test]
    async fn each_connection_has_its_own_budget() {
        let layer = ShedLayer::new(10, 1);
        let (service, mut held) = held_calls(&layer);
        let first = tokio::spawn(service.clone().oneshot(request(HELLO, Some(1))));
        let release = held.recv().await.unwrap();
        let shed = service
            .clone()
            .oneshot(request(HELLO, Some(1)))
            .await
            .unwrap();
        assert_eq!(
            (code(&shed), message(&shed)),
            (Some("8"), CONNECTION_BUSY.into())
        );
        let other = tokio::spawn(service.clone().oneshot(request(HELLO, Some(2))));
        drop(held.recv().await.unwrap());
        assert_eq!(code(&other.await.unwrap().unwrap()), None);
        assert_eq!(layer.shed_calls().by_connection, 1);
        drop(release);
        first.await.unwrap().unwrap();
        // Nothing is kept for connections without calls.
        let tables = &layer.shared.connections;
        assert!(tables.iter().all(|table| lock(table).is_empty()));
        assert_eq!(layer.shared.in_progress.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn health_and_reflection_are_never_shed() {
        let layer = ShedLayer::new(1, 1);
        let (service, mut held) = held_calls(&layer);
        let _busy = tokio::spawn(service.clone().oneshot(request(HELLO, Some(1))));
        let _release = held.recv().await.unwrap();
        let shed = service
            .clone()
            .oneshot(request(HELLO, Some(1)))
            .await
            .unwrap();
        assert_eq!(code(&shed), Some("8"));
        for path in [HEALTH, REFLECTION] {
            let call = tokio::spawn(service.clone().oneshot(request(path, Some(1))));
            held.recv().await.unwrap().send(()).unwrap();
            assert_eq!(code(&call.await.unwrap().unwrap()), None, "{path}");
        }
        assert_eq!(layer.shed_calls().total(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shed_calls_are_reported_at_most_once_an_interval() {
        let (subscriber, log) = capture::subscriber("info");
        let _default = tracing::subscriber::set_default(subscriber);
        let layer = ShedLayer::new(0, 10);
        let service = layer.layer(tower::service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
        let shed = |count| {
            let service = service.clone();
            async move {
                for _ in 0..count {
                    let response = service.clone().oneshot(request(HELLO, Some(1))).await;
                    assert_eq!(code(&response.unwrap()), Some("8"));
                }
            }
        };
        shed(3).await;
        tokio::task::yield_now().await;
        let reports = || {
            log.text()
                .lines()
                .filter(|line| line.contains("since the last report"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(reports().len(), 1, "{}", log.text());
        assert!(reports()[0].contains("shed 3 calls since the last report (total 3)"));
        assert!(reports()[0].contains(" INFO "));
        // Within the interval: counted, reported when it is over.
        tokio::time::sleep(REPORT_INTERVAL / 2).await;
        shed(2).await;
        assert_eq!(reports().len(), 1);
        tokio::time::sleep(REPORT_INTERVAL).await;
        assert_eq!(reports().len(), 2, "{}", log.text());
        assert!(reports()[1].contains("shed 2 calls since the last report (total 5)"));
        // A quiet interval ends the reports; the next shed call starts them again at once.
        tokio::time::sleep(REPORT_INTERVAL * 3).await;
        assert!(!layer.shared.reporting.load(Ordering::Acquire));
        shed(1).await;
        tokio::task::yield_now().await;
        assert_eq!(reports().len(), 3, "{}", log.text());
        assert!(reports()[2].contains("shed 1 calls since the last report (total 6)"));
    }
}
