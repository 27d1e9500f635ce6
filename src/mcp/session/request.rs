//! Requests: the lifecycle, lists, completion and tasks answered at once,
//! and the calls handed back to the transport.

use super::params::{Params, json_str, read_log_level, string_pairs};
use super::*;

impl Session {
    pub(super) fn request<'a>(
        &self,
        req: Request<'a>,
        params: &Params<'a>,
        out: &mut Vec<u8>,
        check: Option<&dyn RequestCheck>,
    ) -> Result<Dispatched<'a>, RpcError> {
        if params.duplicate {
            return Err(RpcError::invalid_params(
                "a member of \"params\" appears twice",
            ));
        }
        let meta = params.meta()?;
        let catalog = self.server.catalog();
        // The tool a `tools/call` names, looked up once for the check and
        // the call (an unnamed or unknown one is refused by `call_kind`).
        let tool = if *req.method == *"tools/call" {
            params
                .name
                .and_then(|n| n.as_str())
                .and_then(|n| catalog.tool_index(&n))
        } else {
            None
        };
        if let Some(check) = check {
            let view = RequestView {
                method: &req.method,
                has_meta: params.meta.is_some(),
                meta_version: meta.version.as_deref(),
                client_capabilities: meta.client_capabilities,
                name: params.name,
                uri: params.uri,
                task_id: params.task_id,
                arguments: params.arguments,
                header_params: tool.and_then(|t| catalog.header_params(t)),
            };
            if let Some(refused) = check.check(&view) {
                return Err(refused);
            }
        }
        let (version, log_level) = match self.version_of(&req, meta, params, out)? {
            Ok(settled) => settled,
            Err(answered) => return Ok(answered),
        };
        if let Some(list) = list_named(&req.method) {
            write_list(out, req.id, &catalog, list, params, version)?;
            return Ok(Dispatched::Done);
        }
        let denied = self.denied_tools();
        if let Some(kind) = call_kind(
            &catalog,
            &req.method,
            params,
            version,
            denied.as_deref(),
            tool,
        )? {
            return Ok(Dispatched::Call(Call {
                catalog: Arc::clone(&catalog),
                id: req.id,
                kind,
                progress_token: meta.progress_token,
                version,
                log_level,
                client_capabilities: meta.client_capabilities,
                client_info: meta.client_info,
                input_responses: params.input_responses,
                request_state: params.request_state,
                message: req.message,
            }));
        }
        self.answer_now(&req, params, meta, &catalog, version, out)
    }

    /// The requests answered at once that are not lists: subscriptions,
    /// tasks, discovery, completion, the log level, `ping`.
    fn answer_now<'a>(
        &self,
        req: &Request<'a>,
        params: &Params<'a>,
        meta: &Meta<'a>,
        catalog: &Arc<Catalog>,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
    ) -> Result<Dispatched<'a>, RpcError> {
        let method: &str = &req.method;
        match method {
            "server/discover" => write_result(out, req.id, &catalog.discover),
            // 2026-07-28 replaced subscriptions with a listen stream.
            "resources/subscribe" | "resources/unsubscribe" if !version.is_modern() => {
                let uri = uri_param(params, method)?;
                let mut subs = self.subscriptions.lock();
                if method == "resources/subscribe" {
                    let set = subs.get_or_insert_default();
                    if set.len() >= super::MAX_SUBSCRIPTIONS && !set.contains(&*uri) {
                        return Err(RpcError::invalid_params(format!(
                            "a session subscribes to at most {} resources; unsubscribe from one first",
                            super::MAX_SUBSCRIPTIONS
                        )));
                    }
                    set.insert(uri.into_owned());
                } else if let Some(set) = subs.as_mut() {
                    set.remove(&*uri);
                    if set.is_empty() {
                        *subs = None;
                    }
                }
                drop(subs);
                write_result(out, req.id, b"{}");
            }
            "tasks/get" | "tasks/update" | "tasks/cancel" if version.is_modern() => {
                if let Some(done) =
                    self.task_request(method, req, params, meta, (catalog, version), out)?
                {
                    return Ok(done);
                }
            }
            "completion/complete" => {
                let values = complete(catalog, params.reference, params.argument)?;
                let answer = complete_result(&values, version);
                write_result(out, req.id, answer.as_bytes());
            }
            "logging/setLevel" if !version.is_modern() => {
                let level = params.level.and_then(read_log_level).ok_or_else(|| {
                    RpcError::invalid_params("logging/setLevel needs a valid \"level\"")
                })?;
                self.log_level
                    .store(encode(&ALL_LEVELS, Some(level)), Ordering::Relaxed);
                write_result(out, req.id, b"{}");
            }
            "ping" if !version.is_modern() => write_result(out, req.id, b"{}"),
            _ => return Err(RpcError::method_not_found(method)),
        }
        Ok(Dispatched::Done)
    }

    /// The protocol version and log level a request runs under: its own
    /// `_meta` stamp (2026-07-28), else the session's; `Err` with the
    /// answer for the requests that need no session (`initialize`, `ping`,
    /// `server/discover`), and an error for the rest before `initialize`.
    #[allow(clippy::type_complexity)]
    pub(super) fn version_of<'a>(
        &self,
        req: &Request<'a>,
        meta: &Meta<'a>,
        params: &Params<'a>,
        out: &mut Vec<u8>,
    ) -> Result<Result<(ProtocolVersion, Option<LogLevel>), Dispatched<'a>>, RpcError> {
        let stamped = match &meta.version {
            None => None,
            Some(v) => match ProtocolVersion::parse(v) {
                Some(v) if v.is_modern() => Some(v),
                _ => {
                    return Err(RpcError::new(
                        UNSUPPORTED_PROTOCOL_VERSION,
                        format!("unsupported protocol version {v:?}"),
                    )
                    .with_data(format!(
                        r#"{{"supported":{},"requested":{}}}"#,
                        supported_json(),
                        json_str(v)
                    )));
                }
            },
        };
        let method: &str = &req.method;
        Ok(Ok(match stamped {
            Some(v) => (v, meta.log_level),
            None => {
                if method == "initialize" {
                    super::check_kept_sizes(params)?;
                    return Ok(Err(self.initialize(req.id, params, out)));
                }
                if method == "ping" {
                    write_result(out, req.id, b"{}");
                    return Ok(Err(Dispatched::Done));
                }
                if method == "server/discover" {
                    write_result(out, req.id, &self.server.catalog().discover);
                    return Ok(Err(Dispatched::Done));
                }
                match self.protocol_version() {
                    Some(v) => (v, self.log_level()),
                    None => {
                        return Err(RpcError::new(
                            INVALID_REQUEST,
                            format!(
                                "session not initialized: send \"initialize\" before {method:?}"
                            ),
                        ));
                    }
                }
            }
        }))
    }

    /// `tasks/get`, `tasks/update`, `tasks/cancel` (the tasks extension);
    /// `Some` when the answer is complete already, or is a call to run
    /// (through the shared store: another replica's task, or a change the
    /// store must hold before the client hears it is done).
    pub(super) fn task_request<'a>(
        &self,
        method: &str,
        req: &Request<'a>,
        params: &Params<'a>,
        meta: &Meta<'a>,
        (catalog, version): (&Arc<Catalog>, ProtocolVersion),
        out: &mut Vec<u8>,
    ) -> Result<Option<Dispatched<'a>>, RpcError> {
        let caps = meta
            .client_capabilities
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c.get()).ok());
        if !super::super::tasks::negotiated(caps.as_ref()) {
            return Err(super::super::tasks::extension_required(method));
        }
        let Some(task_id) = Params::string(params.task_id, "taskId")? else {
            return Err(RpcError::invalid_params(format!(
                "{method} needs a \"taskId\""
            )));
        };
        let responses = match (method, params.input_responses) {
            ("tasks/update", Some(raw)) => match serde_json::from_str(raw.get()) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => {
                    return Err(RpcError::invalid_params(
                        "\"inputResponses\" must be an object",
                    ));
                }
            },
            _ => serde_json::Map::new(),
        };
        let store = &self.server.0.tasks;
        let local = store.get(&task_id, self.principal());
        #[cfg(feature = "redis")]
        if store.shared().is_some() && (local.is_none() || method != "tasks/get") {
            use super::super::tasks::shared::Op;
            let op = match method {
                "tasks/get" => Op::Get,
                "tasks/update" => Op::Update(responses),
                _ => Op::Cancel,
            };
            return Ok(Some(Dispatched::Call(Call {
                catalog: Arc::clone(catalog),
                id: req.id,
                kind: CallKind::Task {
                    task_id: task_id.into_owned(),
                    op,
                },
                progress_token: None,
                version,
                log_level: None,
                client_capabilities: meta.client_capabilities,
                client_info: meta.client_info,
                input_responses: None,
                request_state: None,
                message: req.message,
            })));
        }
        #[cfg(not(feature = "redis"))]
        let _ = (catalog, version);
        let task = local.ok_or_else(|| {
            RpcError::invalid_params(format!("unknown taskId {:?}", crate::util::Brief(&task_id)))
        })?;
        match method {
            "tasks/get" => {
                write_result_with(out, req.id, |out| task.detailed_into(out));
                return Ok(Some(Dispatched::Done));
            }
            "tasks/update" => task.update(responses),
            _ => task.cancel(),
        }
        write_result(out, req.id, br#"{"resultType":"complete"}"#);
        Ok(None)
    }
}

/// The list a method asks for, if it is a list method.
fn list_named(method: &str) -> Option<List> {
    match method {
        "tools/list" => Some(List::Tools),
        "resources/list" => Some(List::Resources),
        "resources/templates/list" => Some(List::ResourceTemplates),
        "prompts/list" => Some(List::Prompts),
        _ => None,
    }
}

/// Writes the page of `list` the request's `cursor` names.
fn write_list(
    out: &mut Vec<u8>,
    id: Id<'_>,
    catalog: &Catalog,
    list: List,
    params: &Params<'_>,
    version: ProtocolVersion,
) -> Result<(), RpcError> {
    let page = match Params::string(params.cursor, "cursor")? {
        None => 0,
        Some(c) => page_of(&c, catalog.page_count(list)).ok_or_else(|| {
            RpcError::new(
                INVALID_PARAMS,
                format!("invalid cursor {:?}", crate::util::Brief(&c)),
            )
        })?,
    };
    write_result(
        out,
        id,
        catalog.list_page(list, page, ListVariant::of(version)),
    );
    Ok(())
}

/// The host code a request runs (a tool, a resource read, a prompt, a
/// listen stream), checked against the catalog; `None` for the methods
/// answered at once.
fn call_kind<'a>(
    catalog: &Catalog,
    method: &str,
    params: &Params<'a>,
    version: ProtocolVersion,
    denied: Option<&Vec<(String, String)>>,
    tool: Option<usize>,
) -> Result<Option<CallKind<'a>>, RpcError> {
    Ok(Some(match method {
        "tools/call" => {
            let Some(name) = Params::string(params.name, "name")? else {
                return Err(RpcError::invalid_params("tools/call needs a \"name\""));
            };
            if let Some((_, scope)) = denied.and_then(|d| d.iter().find(|(t, _)| *t == *name)) {
                return Err(RpcError::new(
                    super::INSUFFICIENT_SCOPE,
                    format!("forbidden: the tool {name:?} needs the scope {scope:?}, which the token lacks"),
                )
                .with_data(serde_json::json!({ "scope": scope }).to_string()));
            }
            // Looked up by `request` with the same name.
            let tool = tool.ok_or_else(|| {
                RpcError::invalid_params(format!("unknown tool {:?}", crate::util::Brief(&name)))
            })?;
            CallKind::Tool {
                tool,
                arguments: params.arguments,
            }
        }
        "resources/read" => {
            let uri = uri_param(params, "resources/read")?;
            let (resource, vars) = catalog
                .find_resource(&uri)
                .ok_or_else(|| not_found(&uri, version))?;
            CallKind::Read {
                resource,
                uri,
                vars,
            }
        }
        "subscriptions/listen" if version.is_modern() => CallKind::Listen(
            super::super::listen::ListenFilter::read(params.notifications)?,
        ),
        "prompts/get" => {
            let Some(name) = Params::string(params.name, "name")? else {
                return Err(RpcError::invalid_params("prompts/get needs a \"name\""));
            };
            let prompt = catalog.prompt_index(&name).ok_or_else(|| {
                RpcError::invalid_params(format!("unknown prompt {:?}", crate::util::Brief(&name)))
            })?;
            let args = string_pairs(params.arguments, "arguments")?;
            catalog.prompts[prompt]
                .check(&args)
                .map_err(RpcError::invalid_params)?;
            CallKind::Prompt { prompt, args }
        }
        _ => return Ok(None),
    }))
}

/// The `uri` a resource request names: -32602 when it is missing, not a
/// string, or longer than [`super::MAX_URI_BYTES`].
fn uri_param<'a>(params: &Params<'a>, method: &str) -> Result<Cow<'a, str>, RpcError> {
    let Some(uri) = Params::string(params.uri, "uri")? else {
        return Err(RpcError::invalid_params(format!(
            "{method} needs a \"uri\""
        )));
    };
    if uri.len() > super::MAX_URI_BYTES {
        return Err(RpcError::invalid_params(format!(
            "\"uri\" is longer than {} bytes",
            super::MAX_URI_BYTES
        )));
    }
    Ok(uri)
}

/// Suggestions for `completion/complete` from the prompt or template it names.
fn complete(
    catalog: &Catalog,
    reference: Option<RawJson<'_>>,
    argument: Option<RawJson<'_>>,
) -> Result<Vec<String>, RpcError> {
    let bad = |why: &str| RpcError::invalid_params(format!("completion/complete: {why}"));
    let reference = reference.ok_or_else(|| bad("needs a \"ref\""))?;
    let argument = argument.ok_or_else(|| bad("needs an \"argument\""))?;
    let r: serde_json::Value =
        serde_json::from_str(reference.get()).map_err(|_| bad("bad \"ref\""))?;
    let a: serde_json::Value =
        serde_json::from_str(argument.get()).map_err(|_| bad("bad \"argument\""))?;
    let (Some(arg), Some(value)) = (a["name"].as_str(), a["value"].as_str()) else {
        return Err(bad("\"argument\" needs a \"name\" and a \"value\""));
    };
    let completer = match r["type"].as_str() {
        Some("ref/prompt") => {
            let name = r["name"]
                .as_str()
                .ok_or_else(|| bad("a prompt ref needs a \"name\""))?;
            let p = catalog
                .prompt_index(name)
                .ok_or_else(|| bad(&format!("unknown prompt {:?}", crate::util::Brief(name))))?;
            catalog.prompts[p]
                .completions
                .iter()
                .find(|(n, _)| n == arg)
                .map(|(_, f)| f.clone())
        }
        Some("ref/resource") => {
            let uri = r["uri"]
                .as_str()
                .ok_or_else(|| bad("a resource ref needs a \"uri\""))?;
            let template = catalog
                .resources
                .iter()
                .find(|t| {
                    t.def.uri_template.as_deref() == Some(uri) || t.def.uri.as_deref() == Some(uri)
                })
                .ok_or_else(|| bad(&format!("unknown resource {:?}", crate::util::Brief(uri))))?;
            template
                .completions
                .iter()
                .find(|(n, _)| n == arg)
                .map(|(_, f)| f.clone())
        }
        _ => {
            return Err(bad(
                "\"ref.type\" must be \"ref/prompt\" or \"ref/resource\"",
            ));
        }
    };
    Ok(completer.map(|f| f(value)).unwrap_or_default())
}

impl Session {
    pub(super) fn initialize<'a>(
        &self,
        id: Id<'a>,
        params: &Params<'_>,
        out: &mut Vec<u8>,
    ) -> Dispatched<'a> {
        let requested = params.protocol_version.and_then(|v| v.as_str());
        let version = ProtocolVersion::negotiate(requested.as_deref().unwrap_or(""));
        *self.client_capabilities.lock() = super::kept_json(params.capabilities);
        *self.client_info.lock() = super::kept_json(params.client_info);
        self.version
            .store(encode(&ALL_VERSIONS, Some(version)), Ordering::Release);
        write_result(out, id, self.server.catalog().initialize_result(version));
        Dispatched::Done
    }
}

/// A `completion/complete` result: at most 100 values, with the total and whether more exist.
fn complete_result(values: &[String], version: ProtocolVersion) -> String {
    let shown = &values[..values.len().min(100)];
    let mut v = serde_json::json!({
        "completion": { "values": shown, "total": values.len(), "hasMore": values.len() > shown.len() }
    });
    if version.is_modern() {
        v["resultType"] = "complete".into();
    }
    v.to_string()
}
