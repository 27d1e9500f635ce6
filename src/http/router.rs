//! The route table: exact path plus method to a handler, built once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::head::Method;
use super::request::Request;
use super::response::Response;

/// Something that answers requests on a route.
///
/// A handler borrows the request for as long as it runs. Synchronous
/// closures `Fn(Request<'_>) -> Response` are handlers as they are; async
/// handlers implement this trait and return [`Reply::new`].
///
/// ```
/// use snowflake_mcp::http::{Handler, Reply, Request, Response};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
///         Reply::new(async move { Response::text(200, req.body().to_vec()) })
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a>;
}

impl<F> Handler for F
where
    F: Fn(Request<'_>) -> Response + Send + Sync + 'static,
{
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        Reply::ready(self(req))
    }
}

/// The future a [`Handler`] returns: ready at once, or boxed.
///
/// The ready form costs no allocation, so fixed answers (health, discovery)
/// stay off the allocator.
pub struct Reply<'a>(ReplyInner<'a>);

enum ReplyInner<'a> {
    Ready(Option<Response>),
    Pending(Pin<Box<dyn Future<Output = Response> + Send + 'a>>),
}

impl<'a> Reply<'a> {
    /// A reply that is already known.
    pub fn ready(response: Response) -> Self {
        Reply(ReplyInner::Ready(Some(response)))
    }

    /// A reply computed by a future.
    pub fn new(future: impl Future<Output = Response> + Send + 'a) -> Self {
        Reply(ReplyInner::Pending(Box::pin(future)))
    }
}

impl Future for Reply<'_> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match &mut self.get_mut().0 {
            ReplyInner::Ready(r) => match r.take() {
                Some(r) => Poll::Ready(r),
                None => Poll::Ready(Response::text(500, "reply polled after completion")),
            },
            ReplyInner::Pending(f) => f.as_mut().poll(cx),
        }
    }
}

struct Route {
    path: Box<str>,
    methods: Vec<(Method, Arc<dyn Handler>)>,
    /// The `Allow` header value, kept in step with `methods`.
    allow: String,
}

/// Maps exact paths and methods to handlers.
///
/// `HEAD` is answered by the `GET` handler (the body is dropped), `OPTIONS`
/// on a known path without its own handler gets 204 with `Allow`, a known path
/// with another method gets 405 with `Allow`, an unknown path 404.
///
/// ```
/// use snowflake_mcp::http::{Method, Response, Router};
///
/// let router = Router::new()
///     .route(Method::Get, "/health", |_req: snowflake_mcp::http::Request<'_>| {
///         Response::json(200, r#"{"status":"ok"}"#)
///     });
/// assert!(router.has_route("/health"));
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for r in &self.routes {
            list.entry(&format_args!("{} [{}]", r.path, r.allow));
        }
        list.finish()
    }
}

/// What the router decided for a method and path.
pub(crate) enum Lookup<'r> {
    Found(&'r dyn Handler),
    NotFound,
    MethodNotAllowed(&'r str),
    Options(&'r str),
}

impl Router {
    /// An empty table: every request gets 404.
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds (or replaces) the handler for `method` on the exact `path`.
    pub fn route(mut self, method: Method, path: &str, handler: impl Handler) -> Self {
        self.insert(method, path, Arc::new(handler));
        self
    }

    /// Adds a handler shared with other routes or held elsewhere by the host.
    pub fn route_shared(mut self, method: Method, path: &str, handler: Arc<dyn Handler>) -> Self {
        self.insert(method, path, handler);
        self
    }

    /// Whether any method is routed on `path`.
    pub fn has_route(&self, path: &str) -> bool {
        self.routes.iter().any(|r| &*r.path == path)
    }

    fn insert(&mut self, method: Method, path: &str, handler: Arc<dyn Handler>) {
        let idx = match self.routes.iter().position(|r| &*r.path == path) {
            Some(i) => i,
            None => {
                self.routes.push(Route {
                    path: path.into(),
                    methods: Vec::new(),
                    allow: String::new(),
                });
                self.routes.len() - 1
            }
        };
        let route = &mut self.routes[idx];
        route.methods.retain(|(m, _)| *m != method);
        route.methods.push((method, handler));
        route.allow = allow_value(&route.methods);
    }

    /// The handler for `method` on `path`, the request-target's path as
    /// sent (compared as bytes: the head's parser lets only visible ASCII
    /// through).
    pub(crate) fn lookup(&self, method: Method, path: &[u8]) -> Lookup<'_> {
        let Some(route) = self.routes.iter().find(|r| r.path.as_bytes() == path) else {
            return Lookup::NotFound;
        };
        let find = |m: Method| {
            route
                .methods
                .iter()
                .find(|(rm, _)| *rm == m)
                .map(|(_, h)| &**h)
        };
        if let Some(h) = find(method) {
            return Lookup::Found(h);
        }
        match method {
            Method::Head => {
                find(Method::Get).map_or(Lookup::MethodNotAllowed(&route.allow), Lookup::Found)
            }
            Method::Options => Lookup::Options(&route.allow),
            _ => Lookup::MethodNotAllowed(&route.allow),
        }
    }
}

fn allow_value(methods: &[(Method, Arc<dyn Handler>)]) -> String {
    let mut names: Vec<&str> = methods.iter().map(|(m, _)| m.as_str()).collect();
    if names.contains(&"GET") && !names.contains(&"HEAD") {
        names.push("HEAD");
    }
    if !names.contains(&"OPTIONS") {
        names.push("OPTIONS");
    }
    names.join(", ")
}
