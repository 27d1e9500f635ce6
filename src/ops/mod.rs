//! Operations endpoints: `/health`, `/health/detailed`, `/status`, `/metrics`.
//!
//! Everything here reads counters that already exist (the connection
//! manager, the session pool, the request manager) without taking a lock on
//! a hot path. The one slow thing, the database check (`SELECT 1` through
//! the pool with a short timeout), is cached for a few seconds and run by at
//! most one prober at a time, so load-balancer probes cannot flood the
//! warehouse.

use parking_lot::Mutex;

mod metrics;
use std::sync::Arc;

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::http::{Handler, Method, Reply, Request, Response, Router};
use crate::pool::PoolStats;
use crate::registry::{Registry, Transport};
use crate::requests::RequestManager;
use crate::warehouse::Warehouse;

/// How long a database check may take. Default: 2 s.
pub(crate) const DEFAULT_DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a database check's result is reused. Default: 5 s.
pub(crate) const DEFAULT_DB_CHECK_TTL: Duration = Duration::from_secs(5);

/// What the operations endpoints report on.
pub struct Ops {
    started: Instant,
    started_at: SystemTime,
    version: String,
    registry: Arc<Registry>,
    requests: Arc<RequestManager>,
    /// The warehouse checked and reported on (none for a host that serves
    /// only its own tools).
    warehouse: Option<Arc<dyn Warehouse>>,
    /// Keys for the protected endpoints, when they are protected.
    /// The admission of the MCP endpoints, applied here too (keys only
    /// when they protect these endpoints).
    admission: crate::guard::Admission,
    /// The MCP servers' request counters (one per transport's server).
    mcp: std::sync::OnceLock<Vec<crate::mcp::McpServer>>,
    /// The HTTP server's counters, once it is bound.
    http: std::sync::OnceLock<crate::server::StatsHandle>,
    /// (transport, where it is served), for `/status`; set once the socket is bound.
    transports: std::sync::OnceLock<Vec<(String, String)>>,
    db_check_timeout: Duration,
    db_check_ttl: Duration,
    /// The last database check. A std mutex: held to read or store it.
    db_cache: Mutex<Option<DbCheck>>,
    /// One prober at a time; the others wait for its result.
    probing: tokio::sync::Mutex<()>,
    /// Set when the server is leaving its load balancer: `/ready` answers
    /// 503 (Relaxed: a lone flag that orders nothing else).
    draining: Readiness,
}

/// Whether a server takes new work, as `/ready` tells a load balancer:
/// cheap to clone, shared with the operations endpoints.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<std::sync::atomic::AtomicBool>);

impl Readiness {
    /// From now on `/ready` answers 503 (liveness, `/health`, stays 200, and
    /// requests are still served): the balancer moves away, then the host
    /// shuts down gracefully.
    pub fn drain(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`Readiness::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("version", &self.version)
            .field("transports", &self.transports)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
struct DbCheck {
    at: Instant,
    checked_at: SystemTime,
    latency: Duration,
    error: Option<String>,
}

/// Which kind of operations endpoint a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    /// `/health`: open, says only "ok".
    Liveness,
    /// `/health/detailed`, `/status`, `/metrics`.
    Report,
}

/// The overall state `/health/detailed` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Health {
    /// Everything works.
    Healthy,
    /// It serves, with something to look at.
    Degraded,
    /// It cannot serve (the database is unreachable).
    Unhealthy,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }
}

impl Ops {
    /// Reports on these parts (wrap it in an `Arc` to mount its routes).
    pub(crate) fn new(
        version: impl Into<String>,
        registry: Arc<Registry>,
        requests: Arc<RequestManager>,
        warehouse: Arc<dyn Warehouse>,
    ) -> Ops {
        Ops::reporting(version, registry, requests, Some(warehouse))
    }

    /// Reports on a server without a warehouse: `/health/detailed` and
    /// `/status` show none, and no database check runs.
    pub(crate) fn without_warehouse(
        version: impl Into<String>,
        registry: Arc<Registry>,
        requests: Arc<RequestManager>,
    ) -> Ops {
        Ops::reporting(version, registry, requests, None)
    }

    fn reporting(
        version: impl Into<String>,
        registry: Arc<Registry>,
        requests: Arc<RequestManager>,
        warehouse: Option<Arc<dyn Warehouse>>,
    ) -> Ops {
        Ops {
            started: Instant::now(),
            started_at: SystemTime::now(),
            version: version.into(),
            registry,
            requests,
            warehouse,
            transports: std::sync::OnceLock::new(),
            http: std::sync::OnceLock::new(),
            mcp: std::sync::OnceLock::new(),
            admission: crate::guard::Admission::default(),
            db_check_timeout: DEFAULT_DB_CHECK_TIMEOUT,
            db_check_ttl: DEFAULT_DB_CHECK_TTL,
            db_cache: Mutex::new(None),
            probing: tokio::sync::Mutex::new(()),
            draining: Readiness::default(),
        }
    }

    /// Requires a key for `/health/detailed`, `/status` and `/metrics` when
    /// Applies the MCP endpoints' admission to these endpoints too: the
    /// per-address rate (every endpoint), then `Host` and `Origin` (every
    /// endpoint but `/health`, which says nothing and must answer load
    /// balancers that send no `Host`), so a page on a rebound DNS name cannot
    /// read `/status` or `/metrics`; then the keys, when they protect these
    /// endpoints ([`auth::Auth::protect_ops`]). Default: open.
    pub fn admission(mut self, mut admission: crate::guard::Admission) -> Self {
        admission.keys = admission
            .keys
            .filter(|a| a.ops_protected() && !a.is_empty());
        self.admission = admission;
        self
    }

    /// The refusal for a request to an endpoint (429, 403, or 401 for a
    /// protected endpoint without a valid key), if any.
    fn refuse(&self, req: &Request<'_>, endpoint: Endpoint) -> Option<Response> {
        if let Err(refused) = self.admission.check_rate(req) {
            return Some(*refused);
        }
        if endpoint == Endpoint::Liveness {
            return None;
        }
        if let Err(refused) = self.admission.check_host(req, true) {
            return Some(*refused);
        }
        self.admission
            .keys
            .as_ref()
            .and_then(|a| a.check(req).err())
            .map(crate::guard::auth::AuthError::response)
    }

    /// Sets the database check's timeout and how long its result is reused.
    /// Defaults: [`DEFAULT_DB_CHECK_TIMEOUT`], [`DEFAULT_DB_CHECK_TTL`].
    pub fn db_check(mut self, timeout: Duration, ttl: Duration) -> Self {
        self.db_check_timeout = timeout;
        self.db_check_ttl = ttl;
        self
    }

    /// Names what is served where (`("streamable_http", "http://127.0.0.1:8000/mcp")`),
    /// for `/status`; only the first call counts.
    pub fn set_transports(&self, transports: Vec<(String, String)>) {
        let _ = self.transports.set(transports);
    }

    /// Reports these MCP servers' requests by method and outcome, their
    /// durations, and their tool calls by tool and outcome (summed over the
    /// servers); only the first call counts.
    pub fn set_mcp_servers(&self, servers: Vec<crate::mcp::McpServer>) {
        let _ = self.mcp.set(servers);
    }

    /// Reports the HTTP server's counters (responses by status, bytes) in
    /// `/metrics`; only the first call counts.
    pub fn set_http_stats(&self, stats: crate::server::StatsHandle) {
        let _ = self.http.set(stats);
    }

    /// Adds `GET /health`, `/health/detailed`, `/status` and `/metrics`.
    pub fn routes(self: &Arc<Self>, router: Router) -> Router {
        let ops = Arc::clone(self);
        router
            .route(Method::Get, "/health", move |req: Request<'_>| {
                match ops.refuse(&req, Endpoint::Liveness) {
                    Some(refusal) => refusal,
                    None => Response::static_body(200, "application/json", br#"{"status":"ok"}"#),
                }
            })
            .route_shared(
                Method::Get,
                "/health/detailed",
                Arc::new(Detailed(Arc::clone(self))),
            )
            .route_shared(Method::Get, "/status", Arc::new(Status(Arc::clone(self))))
            .route_shared(Method::Get, "/metrics", Arc::new(Metrics(Arc::clone(self))))
            .route(Method::Get, "/ready", {
                let ops = Arc::clone(self);
                move |req: Request<'_>| match ops.refuse(&req, Endpoint::Liveness) {
                    Some(refusal) => refusal,
                    None if ops.draining.is_draining() => {
                        Response::static_body(503, "application/json", br#"{"status":"draining"}"#)
                    }
                    None => {
                        Response::static_body(200, "application/json", br#"{"status":"ready"}"#)
                    }
                }
            })
    }

    /// The handle that turns `/ready` to 503 ([`Readiness::drain`]).
    pub fn readiness(&self) -> Readiness {
        self.draining.clone()
    }

    fn cached(&self) -> Option<DbCheck> {
        let cache = self.db_cache.lock();
        cache.clone().filter(|c| c.at.elapsed() < self.db_check_ttl)
    }

    /// The database check, from the cache when fresh; whether it was cached.
    async fn check_database(&self) -> (DbCheck, bool) {
        if let Some(c) = self.cached() {
            return (c, true);
        }
        let _turn = self.probing.lock().await;
        // Another prober may have just refreshed it.
        if let Some(c) = self.cached() {
            return (c, true);
        }
        let started = Instant::now();
        let ping = async {
            match &self.warehouse {
                Some(w) => w.ping().await,
                None => Ok(()),
            }
        };
        let error = match tokio::time::timeout(self.db_check_timeout, ping).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "no answer to SELECT 1 within {}s",
                self.db_check_timeout.as_secs_f64()
            )),
        };
        let check = DbCheck {
            at: Instant::now(),
            checked_at: SystemTime::now(),
            latency: started.elapsed(),
            error,
        };
        *self.db_cache.lock() = Some(check.clone());
        (check, false)
    }

    /// The `/health/detailed` body and its overall state.
    pub async fn detailed(&self) -> (Health, Value) {
        let (db, cached) = self.check_database().await;
        let pool = self.pool_stats();
        let (running, queued) = self.requests.load();
        let snap = self.registry.snapshot();
        let db_health = if db.error.is_some() {
            Health::Unhealthy
        } else {
            Health::Healthy
        };
        let pool_health = if self.warehouse.is_some()
            && (!pool.healthy || (pool.waiting > 0 && pool.active >= pool.max_size))
        {
            Health::Degraded
        } else {
            Health::Healthy
        };
        let requests_health = if queued > 0 {
            Health::Degraded
        } else {
            Health::Healthy
        };
        let overall = db_health.max(pool_health).max(requests_health);
        let mut database = json!({
            "status": db_health.as_str(),
            "kind": self.kind(),
            "latency_ms": db.latency.as_secs_f64() * 1000.0,
            "checked_at": crate::util::date::format_rfc3339(db.checked_at),
            "cached": cached,
        });
        if let Some(e) = &db.error {
            database["error"] = e.clone().into();
        }
        let body = json!({
            "overall_status": overall.as_str(),
            "timestamp": crate::util::date::format_rfc3339(SystemTime::now()),
            "components": {
                "connection_pool": self.warehouse.as_ref().map(|_| pool_json(&pool, Some(pool_health))),
                "database": self.warehouse.as_ref().map(|_| database),
                "request_manager": {
                    "status": requests_health.as_str(),
                    "running": running,
                    "queued": queued,
                },
                "websockets": {
                    "status": "healthy",
                    "active": snap.get(Transport::WebSocket).active,
                },
                "sessions": {
                    "status": "healthy",
                    "active": snap.active_sessions(),
                },
            }
        });
        (overall, body)
    }

    /// The warehouse's pool counters (zeros without a warehouse).
    fn pool_stats(&self) -> PoolStats {
        self.warehouse
            .as_ref()
            .map(|w| w.pool_stats())
            .unwrap_or_default()
    }

    /// The warehouse's kind, if there is one.
    fn kind(&self) -> Option<&'static str> {
        self.warehouse.as_ref().map(|w| w.kind())
    }

    /// The `/status` body.
    pub fn status(&self) -> Value {
        let snap = self.registry.snapshot();
        let by_transport: serde_json::Map<String, Value> = Transport::ALL
            .iter()
            .map(|&t| {
                let s = snap.get(t);
                (
                    t.name().to_owned(),
                    json!({"active": s.active, "opened": s.opened, "closed": s.closed}),
                )
            })
            .collect();
        let active: Vec<Value> = self
            .requests
            .active()
            .into_iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "client": r.client,
                    "tool": r.tool,
                    "age_ms": r.age.as_millis() as u64,
                    "running": r.running,
                })
            })
            .collect();
        let pool = self.pool_stats();
        // What waits for clients that do not read, all connections at once.
        let backlog = self
            .http
            .get()
            .map(|h| json!({"bytes": h.backlog_bytes(), "cuts": h.backlog_cuts()}));
        // What all the bounded pools hold, against the one budget.
        let memory = self
            .http
            .get()
            .map(|h| json!({"bytes": h.memory_bytes(), "budget": h.memory_budget_bytes()}));
        json!({
            "version": self.version,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "started_at": crate::util::date::format_rfc3339(self.started_at),
            "transports": self.transports.get().map(Vec::as_slice).unwrap_or_default().iter().map(|(name, at)| json!({"name": name, "address": at})).collect::<Vec<_>>(),
            "connections": by_transport,
            "backlog": backlog,
            "memory": memory,
            "sessions_active": snap.active_sessions(),
            "active_requests": active,
            "warehouse": self.kind(),
            "pool": self.warehouse.as_ref().map(|_| pool_json(&pool, None)),
        })
    }
}

/// The pool's counters as `/health/detailed` and `/status` show them (with
/// the component status in the first).
fn pool_json(pool: &PoolStats, status: Option<Health>) -> Value {
    let mut v = json!({
        "max_size": pool.max_size,
        "total": pool.total,
        "active": pool.active,
        "idle": pool.idle,
        "waiting": pool.waiting,
        "healthy": pool.healthy,
        "created": pool.created,
        "failed": pool.failed,
        "broken": pool.broken,
        "acquire_timeouts": pool.acquire_timeouts,
        "acquires": pool.acquires,
        "wait_seconds": pool.wait_time.as_secs_f64(),
    });
    if let Some(status) = status {
        v["status"] = status.as_str().into();
    }
    v
}

struct Detailed(Arc<Ops>);

impl Handler for Detailed {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        if let Some(refusal) = self.0.refuse(&req, Endpoint::Report) {
            return Reply::ready(refusal);
        }
        Reply::new(async move {
            let (health, body) = self.0.detailed().await;
            let status = if health == Health::Unhealthy {
                503
            } else {
                200
            };
            Response::json(status, body.to_string())
        })
    }
}

struct Status(Arc<Ops>);

impl Handler for Status {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        if let Some(refusal) = self.0.refuse(&req, Endpoint::Report) {
            return Reply::ready(refusal);
        }
        Reply::ready(Response::json(200, self.0.status().to_string()))
    }
}

struct Metrics(Arc<Ops>);

impl Handler for Metrics {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        if let Some(refusal) = self.0.refuse(&req, Endpoint::Report) {
            return Reply::ready(refusal);
        }
        Reply::ready(
            Response::new(200)
                .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                .body(self.0.metrics()),
        )
    }
}
