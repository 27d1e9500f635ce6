//! Log lines that could carry secrets, kept below `debug` whatever the
//! filter says.

/// Crates whose own log lines can carry secrets below `info`: the HTTP
/// client and its middleware can log requests (with their `Authorization`
/// headers) at `debug` and `trace`. Whatever the filter says, they log at
/// `info` at most.
pub const SECRET_BEARING_TARGETS: [&str; 3] = ["reqwest", "reqwest_middleware", "reqwest_retry"];

/// Whether `target` is one of [`SECRET_BEARING_TARGETS`] or a module of one.
fn is_secret_bearing(target: &str) -> bool {
    SECRET_BEARING_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// `filter` with [`SECRET_BEARING_TARGETS`] capped at `info` (for events
/// those crates emit through `tracing`).
pub(super) fn cap_secret_logs(
    mut filter: tracing_subscriber::EnvFilter,
) -> tracing_subscriber::EnvFilter {
    for target in SECRET_BEARING_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// A layer that drops events of [`SECRET_BEARING_TARGETS`] below `info`,
/// including those that come through the `log` crate: the bridge gives
/// them all one target (`log`), so a target filter never sees whose they
/// are; their own target is read from the event itself.
pub struct CapSecretLogs;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CapSecretLogs {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        use tracing_log::NormalizeEvent as _;
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        !(is_secret_bearing(metadata.target()) && *metadata.level() > tracing::Level::INFO)
    }
}
