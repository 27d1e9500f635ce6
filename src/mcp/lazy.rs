//! JSON a call carries but seldom reads (the client's `clientInfo` and
//! capabilities): kept as received and turned into a `Value` only when a
//! handler or a check first asks, not on every call.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::kept::Kept;

/// Where a session's `clientInfo` (from `initialize`) is read from: the
/// session, as a call's context holds it (`SessionLink` extends this, so
/// this file need not name it).
pub(crate) trait ClientInfoSource: Send + Sync {
    /// The client's `clientInfo` from `initialize`.
    fn client_info(&self) -> Option<Value>;
}

/// Where a [`LazyJson`] comes from.
enum Source {
    /// Nothing was sent.
    Nothing,
    /// The text the client sent (in the request's `_meta`), as the
    /// scanner found it (valid JSON; not validated again here).
    Text(Kept),
    /// The session's `clientInfo` (from `initialize`), asked for when read.
    SessionInfo(Arc<dyn ClientInfoSource>),
}

/// A JSON value parsed (or fetched from the session) the first time it is
/// read, then kept.
pub(crate) struct LazyJson {
    source: Source,
    value: OnceLock<Option<Value>>,
}

impl LazyJson {
    /// Nothing.
    pub(crate) fn none() -> LazyJson {
        LazyJson {
            source: Source::Nothing,
            value: OnceLock::new(),
        }
    }

    /// The JSON text the client sent, if any.
    pub(crate) fn text(text: Option<Kept>) -> LazyJson {
        LazyJson {
            source: text.map_or(Source::Nothing, Source::Text),
            value: OnceLock::new(),
        }
    }

    /// The `clientInfo` of `session`'s `initialize`, asked for once when
    /// first read.
    pub(crate) fn session_info(session: Arc<dyn ClientInfoSource>) -> LazyJson {
        LazyJson {
            source: Source::SessionInfo(session),
            value: OnceLock::new(),
        }
    }

    /// The value (`None` if nothing was sent or it does not parse).
    pub(crate) fn get(&self) -> Option<&Value> {
        self.value
            .get_or_init(|| match &self.source {
                Source::Nothing => None,
                Source::Text(text) => serde_json::from_str(text).ok(),
                Source::SessionInfo(session) => session.client_info(),
            })
            .as_ref()
    }
}

impl Default for LazyJson {
    fn default() -> LazyJson {
        LazyJson::none()
    }
}

impl std::fmt::Debug for LazyJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What the client sent may name it; the value itself is its own.
        match self.value.get() {
            Some(v) => write!(f, "LazyJson({v:?})"),
            None => f.write_str("LazyJson(unread)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_once_when_first_read() {
        let lazy = LazyJson::text(Some(Kept::one(r#"{"name":"c","version":"1"}"#)));
        assert_eq!(format!("{lazy:?}"), "LazyJson(unread)");
        assert_eq!(lazy.get().and_then(|v| v["name"].as_str()), Some("c"));
        assert!(std::ptr::eq(lazy.get().unwrap(), lazy.get().unwrap()));
        assert!(LazyJson::none().get().is_none());
        assert!(LazyJson::text(None).get().is_none());
    }
}
