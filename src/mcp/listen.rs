//! `subscriptions/listen` (2026-07-28): a request whose answer is a
//! long-lived stream of the notifications the client opted in to.
//!
//! The first message is `notifications/subscriptions/acknowledged` with the
//! filter the server agreed to (only types it can deliver); after it, each
//! change the client asked for is sent as its notification, every one
//! tagged with `_meta["io.modelcontextprotocol/subscriptionId"]` = the
//! listen request's id. Nothing outside the filter is ever sent. The
//! stream lasts until the client cancels it (on HTTP: closes it) or the
//! server stops, which ends it with an empty result.

use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::context::Context;
use super::server::{Catalog, McpServer, ServerEvent};
use crate::jsonrpc::write::write_notification;
use crate::jsonrpc::{RawJson, RpcError};

/// The `_meta` key naming the subscription a notification belongs to.
pub const SUBSCRIPTION_ID_META_KEY: &str = "io.modelcontextprotocol/subscriptionId";

/// What a client opted in to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ListenFilter {
    tools: bool,
    prompts: bool,
    resources: bool,
    resource_uris: Vec<String>,
}

impl ListenFilter {
    /// Reads the request's `notifications` member.
    pub(crate) fn read(raw: Option<RawJson<'_>>) -> Result<ListenFilter, RpcError> {
        let bad = |why: &str| RpcError::invalid_params(format!("subscriptions/listen: {why}"));
        let raw = raw.ok_or_else(|| bad("needs \"notifications\""))?;
        let v: Value = serde_json::from_str(raw.get()).map_err(|_| bad("bad \"notifications\""))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("\"notifications\" must be an object"))?;
        let flag = |name: &str| -> Result<bool, RpcError> {
            match obj.get(name) {
                None => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(bad(&format!("\"{name}\" must be a boolean"))),
            }
        };
        let resource_uris = match obj.get("resourceSubscriptions") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|u| u.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("\"resourceSubscriptions\" must be an array of URIs"))?,
            Some(_) => return Err(bad("\"resourceSubscriptions\" must be an array of URIs")),
        };
        Ok(ListenFilter {
            tools: flag("toolsListChanged")?,
            prompts: flag("promptsListChanged")?,
            resources: flag("resourcesListChanged")?,
            resource_uris,
        })
    }

    /// The part of the filter this server can deliver.
    fn agreed(&self, catalog: &Catalog) -> ListenFilter {
        let has_resources = !catalog.resources.is_empty();
        ListenFilter {
            tools: self.tools && !catalog.tools.is_empty(),
            prompts: self.prompts && !catalog.prompts.is_empty(),
            resources: self.resources && has_resources,
            resource_uris: if has_resources {
                self.resource_uris.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// The filter as the acknowledgement states it (only what is on).
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.tools {
            m.insert("toolsListChanged".into(), true.into());
        }
        if self.prompts {
            m.insert("promptsListChanged".into(), true.into());
        }
        if self.resources {
            m.insert("resourcesListChanged".into(), true.into());
        }
        if !self.resource_uris.is_empty() {
            m.insert("resourceSubscriptions".into(), json!(self.resource_uris));
        }
        Value::Object(m)
    }

    /// The notification for `event`, if the client asked for it.
    fn notification(&self, event: &ServerEvent) -> Option<(&'static str, Map<String, Value>)> {
        let mut params = Map::new();
        let method = match event {
            ServerEvent::ToolsChanged if self.tools => "notifications/tools/list_changed",
            ServerEvent::PromptsChanged if self.prompts => "notifications/prompts/list_changed",
            ServerEvent::ResourcesChanged if self.resources => {
                "notifications/resources/list_changed"
            }
            ServerEvent::ResourceUpdated(uri)
                if self.resource_uris.iter().any(|u| **u == **uri) =>
            {
                params.insert("uri".into(), Value::from(&**uri));
                "notifications/resources/updated"
            }
            _ => return None,
        };
        Some((method, params))
    }
}

/// Runs a listen stream; returns its closing result when the server stops.
pub(crate) async fn listen(
    catalog: &Catalog,
    server: &McpServer,
    filter: ListenFilter,
    ctx: &Context,
) -> Result<Value, RpcError> {
    let (Some(_), Some(peer)) = (ctx.session(), ctx.peer()) else {
        return Err(RpcError::new(
            crate::jsonrpc::INTERNAL_ERROR,
            "subscriptions/listen needs a transport that can stream",
        ));
    };
    let id: Value = serde_json::from_str(ctx.request_id()).unwrap_or(Value::Null);
    let tag = |mut params: Map<String, Value>| {
        let mut meta = Map::new();
        meta.insert(SUBSCRIPTION_ID_META_KEY.into(), id.clone());
        params.insert("_meta".into(), Value::Object(meta));
        Value::Object(params)
    };
    // Listen before acknowledging, so no change after the ack is missed.
    let mut events = server.events();
    let agreed = filter.agreed(catalog);
    let mut ack = Map::new();
    ack.insert("notifications".into(), agreed.to_json());
    let mut out = Vec::with_capacity(192);
    write_notification(
        &mut out,
        "notifications/subscriptions/acknowledged",
        tag(ack).to_string().as_bytes(),
    );
    if !peer.send(out).await {
        return Err(RpcError::new(
            crate::jsonrpc::INTERNAL_ERROR,
            "the client is gone",
        ));
    }
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            // Missed some under load: the client re-lists what it cares about anyway.
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        };
        let Some((method, params)) = agreed.notification(&event) else {
            continue;
        };
        let mut out = Vec::with_capacity(160);
        write_notification(&mut out, method, tag(params).to_string().as_bytes());
        if !peer.send(out).await {
            return Err(RpcError::new(
                crate::jsonrpc::INTERNAL_ERROR,
                "the client is gone",
            ));
        }
    }
    let mut meta = Map::new();
    meta.insert(SUBSCRIPTION_ID_META_KEY.into(), id);
    Ok(json!({ "_meta": meta }))
}
