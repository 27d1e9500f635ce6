//! The Snowflake tools, registered through the public tool API like any host's.
//!
//! `register` adds to an [`McpServerBuilder`]: `list_databases`,
//! `list_schemas`, `list_tables`, `list_views`, `describe_table`,
//! `describe_view`, `query_view` and `execute_query` (the names and
//! arguments of the Python server this project replaces, plus the new
//! ones), and the resource template `snowflake://{database}/{schema}/{table}`
//! whose content is a table's description. Identifiers from arguments are
//! quoted, never spliced; `execute_query` goes through the [`sql_guard`]
//! first. Results carry `structuredContent` (columns, rows, row count,
//! `truncated`, the query id) and the same as a text table; warehouse
//! errors are `isError` results with the warehouse's code and message.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::mcp::{
    Context, McpServerBuilder, ReadError, Resource, ResourceContents, Tool, ToolOutput,
};
use crate::requests::RequestManager;
use crate::warehouse::{Progress, QueryOptions, QueryOrigin, Warehouse};

pub use crate::util::sql_guard;

mod args;
mod shape;
use args::{
    DatabaseArg, ExecuteArgs, OptionalSchemaArgs, QueryViewArgs, SchemaArgs, TableArgs, ViewArgs,
    with_limit,
};
use shape::{names_output, result_output, result_schema, result_weight, warehouse_error};

use sql_guard::{SqlGuard, StatementKind};

/// Rows a query returns when the client names no limit. Default: 100.
pub(crate) const DEFAULT_ROW_LIMIT: usize = 100;
/// The largest `limit` a client may ask for. Default: 10 000.
pub(crate) const MAX_ROW_LIMIT: usize = 10_000;
/// Most bytes of row data (as JSON) in one result. Default: 1 MiB.
pub(crate) const DEFAULT_MAX_RESULT_BYTES: usize = 1024 * 1024;

/// Settings of the tools.
#[derive(Clone, Debug)]
pub struct ToolsConfig {
    /// What `execute_query` may run. Default: read-only.
    pub guard: SqlGuard,
    /// Default: 100.
    pub default_limit: usize,
    /// Default: 10 000.
    pub max_limit: usize,
    /// Default: 1 MiB.
    pub max_result_bytes: usize,
    /// For clients that negotiated the tasks extension (2026-07-28), an
    /// `execute_query` still running after this long becomes a task the
    /// client polls (`tasks/get`) instead of a request it holds open.
    /// Default: `None` (it never does, and the tool does not advertise it).
    pub query_task_after: Option<std::time::Duration>,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            guard: SqlGuard::read_only(),
            default_limit: DEFAULT_ROW_LIMIT,
            max_limit: MAX_ROW_LIMIT,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            query_task_after: None,
        }
    }
}

struct Tools {
    warehouse: Arc<dyn Warehouse>,
    config: ToolsConfig,
    /// What a read-only key's calls may run: the configured kinds that are
    /// also read-only (one parse checks both rules).
    read_only_guard: SqlGuard,
    requests: Arc<RequestManager>,
}

/// Adds the warehouse tools and the table resource template to `builder`.
///
/// Every call that reaches the warehouse runs under `requests` (limits,
/// fair share, timeout; its list is what a status page shows).
pub(crate) fn register(
    builder: McpServerBuilder,
    warehouse: Arc<dyn Warehouse>,
    config: ToolsConfig,
    requests: Arc<RequestManager>,
) -> McpServerBuilder {
    let read_only_guard = SqlGuard::allowing(
        config
            .guard
            .allowed()
            .iter()
            .copied()
            .filter(|k| StatementKind::READ_ONLY.contains(k)),
    );
    let tools = Arc::new(Tools {
        warehouse,
        config,
        read_only_guard,
        requests,
    });
    builder
        .tool(list_databases_tool(&tools))
        .tool(list_schemas_tool(&tools))
        .tool(list_tables_tool(&tools))
        .tool(list_views_tool(&tools))
        .tool(describe_table_tool(&tools))
        .tool(describe_view_tool(&tools))
        .tool(query_view_tool(&tools))
        .tool(execute_query_tool(&tools))
        .resource(tables_resource(&tools))
}

/// The `list_databases` tool.
fn list_databases_tool(tools: &Arc<Tools>) -> Tool {
    let t = Arc::clone(tools);
    Tool::raw(
        "list_databases",
        "List the databases of the warehouse.",
        json!({"type": "object", "properties": {}}),
        move |ctx: Context, _args: Value| {
            let t = Arc::clone(&t);
            async move {
                t.limited(&ctx, "list_databases", async {
                    match t.warehouse.databases().await {
                        Ok(dbs) => names_output("databases", &dbs, json!({"databases": dbs})),
                        Err(e) => warehouse_error(&e),
                    }
                })
                .await
            }
        },
    )
    .title("List databases")
    .annotations(read_only())
}

/// The `list_schemas` tool.
fn list_schemas_tool(tools: &Arc<Tools>) -> Tool {
    let t = Arc::clone(tools);
    Tool::derived(
        "list_schemas",
        "List the schemas of a database.",
        move |ctx: Context, args: DatabaseArg| {
            let t = Arc::clone(&t);
            async move {
                t.limited(&ctx, "list_schemas", async {
                    match t.warehouse.schemas(&args.database).await {
                        Ok(s) => names_output(
                            "schemas",
                            &s,
                            json!({"database": args.database, "schemas": s}),
                        ),
                        Err(e) => warehouse_error(&e),
                    }
                })
                .await
            }
        },
    )
    .title("List schemas")
    .annotations(read_only())
}

/// The `list_tables` tool.
fn list_tables_tool(tools: &Arc<Tools>) -> Tool {
    let t = Arc::clone(tools);
    Tool::derived(
        "list_tables",
        "List the tables of a schema (views: list_views).",
        move |ctx: Context, args: SchemaArgs| {
            let t = Arc::clone(&t);
            async move {
                let listed = t.list_kind(&args.database, Some(&args.schema), "TABLE");
                t.limited(&ctx, "list_tables", listed).await
            }
        },
    )
    .title("List tables")
    .annotations(read_only())
}

/// The `list_views` tool.
fn list_views_tool(tools: &Arc<Tools>) -> Tool {
    let t = Arc::clone(tools);
    Tool::derived(
        "list_views",
        "List the views of a database, or of one schema.",
        move |ctx: Context, args: OptionalSchemaArgs| {
            let t = Arc::clone(&t);
            async move {
                let listed = t.list_kind(&args.database, args.schema.as_deref(), "VIEW");
                t.limited(&ctx, "list_views", listed).await
            }
        },
    )
    .title("List views")
    .annotations(read_only())
}

/// The `describe_table` tool.
fn describe_table_tool(tools: &Arc<Tools>) -> Tool {
    let t = Arc::clone(tools);
    Tool::derived(
        "describe_table",
        "Describe a table: columns (name, type, nullability, default, comment) and its DDL where the warehouse has it.",
        move |ctx: Context, args: TableArgs| {
            let t = Arc::clone(&t);
            async move {
                t.limited(&ctx, "describe_table", t.describe(&args.database, &args.schema, &args.table))
                    .await
            }
        },
    )
    .title("Describe a table")
    .annotations(read_only())
}

/// The `describe_view` tool.
fn describe_view_tool(tools: &Arc<Tools>) -> Tool {
    let t = Arc::clone(tools);
    Tool::derived(
        "describe_view",
        "Describe a view: its columns and definition.",
        move |ctx: Context, args: ViewArgs| {
            let t = Arc::clone(&t);
            async move {
                let schema = args
                    .schema
                    .unwrap_or_else(|| t.warehouse.default_schema().to_owned());
                t.limited(
                    &ctx,
                    "describe_view",
                    t.describe(&args.database, &schema, &args.view_name),
                )
                .await
            }
        },
    )
    .title("Describe a view")
    .annotations(read_only())
}

/// The `query_view` tool.
fn query_view_tool(tools: &Arc<Tools>) -> Tool {
    let t = Arc::clone(tools);
    Tool::typed(
        "query_view",
        "Read rows of a view.",
        with_limit::<QueryViewArgs>(&tools.config),
        move |ctx: Context, args: QueryViewArgs| {
            let t = Arc::clone(&t);
            async move {
                let schema = args
                    .schema
                    .unwrap_or_else(|| t.warehouse.default_schema().to_owned());
                let limit = args.limit.unwrap_or(t.config.default_limit);
                let name = t
                    .warehouse
                    .qualified(&args.database, &schema, &args.view_name);
                // Identifiers quoted; one row more than asked shows whether there are more.
                let sql = format!("SELECT * FROM {name} LIMIT {}", limit + 1);
                t.limited(
                    &ctx,
                    "query_view",
                    t.run(
                        &ctx,
                        "query_view",
                        &sql,
                        Some(args.database),
                        Some(schema),
                        limit,
                    ),
                )
                .await
            }
        },
    )
    .title("Query a view")
    .output_schema(result_schema())
    .annotations(read_only())
}

/// The `execute_query` tool.
fn execute_query_tool(tools: &Arc<Tools>) -> Tool {
    let tool = execute_query_plain(tools);
    match tools.config.query_task_after {
        Some(after) => tool
            .task_support(crate::mcp::TaskSupport::Optional)
            .task_after(after),
        None => tool,
    }
}

/// `execute_query` before its task support.
fn execute_query_plain(tools: &Arc<Tools>) -> Tool {
    let t = Arc::clone(tools);
    Tool::typed(
        "execute_query",
        "Run one SQL statement. Read-only by default: SELECT (and WITH), SHOW, DESCRIBE, EXPLAIN; \
         one statement, no comments. Rows beyond the limit are cut, with a notice.",
        with_limit::<ExecuteArgs>(&tools.config),
        move |ctx: Context, args: ExecuteArgs| {
            let t = Arc::clone(&t);
            async move {
                // A read-only key: read-only statements, whatever the server
                // allows others; a token: the kinds its scopes grant.
                let limited;
                let (guard, whose) = if ctx.is_read_only() {
                    (&t.read_only_guard, " (read-only key)")
                } else if let Some(kinds) = ctx.statement_kinds() {
                    limited = t.config.guard.within(&kinds);
                    (&limited, " (not granted by the token's scopes)")
                } else {
                    (&t.config.guard, "")
                };
                let dialect = t.warehouse.sql_dialect();
                let checked = if args.query.len() > GUARD_INLINE_BYTES {
                    // Tokenizing a long text takes a while: off the async workers.
                    let (guard, sql) = (guard.clone(), args.query.clone());
                    ctx.run_heavy(move || guard.check_for(&sql, dialect).map(|_| ()))
                        .await
                        .unwrap_or_else(|| {
                            Err(sql_guard::Refusal::Unparseable("the check failed".into()))
                        })
                } else {
                    guard.check_for(&args.query, dialect).map(|_| ())
                };
                if let Err(refusal) = checked {
                    return ToolOutput::error(format!("Refused{whose}: {refusal}"));
                }
                let limit = args.limit.unwrap_or(t.config.default_limit);
                t.limited(
                    &ctx,
                    "execute_query",
                    t.run(
                        &ctx,
                        "execute_query",
                        &args.query,
                        args.database,
                        args.schema,
                        limit,
                    ),
                )
                .await
            }
        },
    )
    .title("Execute a SQL query")
    .output_schema(result_schema())
    .annotations(query_hints(&tools.config))
}

/// The `tables` resource template.
fn tables_resource(tools: &Arc<Tools>) -> Resource {
    let t = Arc::clone(tools);
    Resource::template(
        "snowflake://{database}/{schema}/{table}",
        "table",
        move |ctx: Context, uri: String, vars: Vec<(String, String)>| {
            let t = Arc::clone(&t);
            async move {
                let var = |name: &str| {
                    vars.iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let (db, schema, table) = (var("database"), var("schema"), var("table"));
                let described = t
                    .requests
                    .run_as(&ctx.client_key(), &ctx.party_key(), "resources/read", t.warehouse.describe(&db, &schema, &table))
                    .await
                    .map_err(|e| ReadError::Failed(e.to_string()))?;
                match described {
                    Ok(d) => Ok(vec![ResourceContents::Text {
                        uri,
                        mime_type: Some("application/json".into()),
                        text: serde_json::to_string_pretty(&d).unwrap_or_default(),
                    }]),
                    Err(e) if e.kind == crate::warehouse::ErrorKind::NotFound => {
                        Err(ReadError::NotFound)
                    }
                    Err(e) => Err(ReadError::Failed(e.to_string())),
                }
            }
        },
    )
    .description("A table or view of the warehouse; its content is the table's description (columns, types, DDL) as JSON.")
    .mime_type("application/json")
}

/// The annotations of the tools that only read.
fn read_only() -> Value {
    json!({"readOnlyHint": true, "openWorldHint": false})
}

/// `execute_query`'s annotations: read-only unless writes are allowed.
fn query_hints(config: &ToolsConfig) -> Value {
    if config
        .guard
        .allowed()
        .iter()
        .all(|k| StatementKind::READ_ONLY.contains(k))
    {
        read_only()
    } else {
        json!({"readOnlyHint": false, "destructiveHint": true, "openWorldHint": false})
    }
}

impl Tools {
    /// Runs a warehouse call under the request manager's limits.
    async fn limited(
        &self,
        ctx: &Context,
        tool: &str,
        work: impl std::future::Future<Output = ToolOutput>,
    ) -> ToolOutput {
        match self
            .requests
            .run_as(&ctx.client_key(), &ctx.party_key(), tool, work)
            .await
        {
            Ok(output) => output,
            Err(e) => ToolOutput::error(e.to_string()),
        }
    }

    async fn list_kind(&self, database: &str, schema: Option<&str>, kind: &str) -> ToolOutput {
        match self.warehouse.tables(database, schema).await {
            Ok(all) => {
                let items: Vec<_> = all.into_iter().filter(|t| t.kind == kind).collect();
                let key = if kind == "VIEW" { "views" } else { "tables" };
                let mut text = String::new();
                if items.is_empty() {
                    let _ = write!(text, "No {key} in {database}");
                } else {
                    for t in &items {
                        let _ = writeln!(text, "{}.{}", t.schema, t.name);
                    }
                }
                let mut structured = json!({"database": database, key: items});
                if let Some(schema) = schema {
                    structured["schema"] = schema.into();
                }
                ToolOutput::structured(structured).with_text(text.trim_end())
            }
            Err(e) => warehouse_error(&e),
        }
    }

    async fn describe(&self, database: &str, schema: &str, table: &str) -> ToolOutput {
        match self.warehouse.describe(database, schema, table).await {
            Ok(d) => {
                let mut text = format!("{} {}.{}.{}\n", d.kind, d.database, d.schema, d.name);
                for c in &d.columns {
                    let _ = write!(
                        text,
                        "  {} {}{}",
                        c.name,
                        c.type_name,
                        if c.nullable { "" } else { " NOT NULL" }
                    );
                    if let Some(def) = &c.default {
                        let _ = write!(text, " DEFAULT {def}");
                    }
                    if let Some(comment) = &c.comment {
                        let _ = write!(text, " -- {comment}");
                    }
                    text.push('\n');
                }
                if let Some(ddl) = &d.ddl {
                    let _ = write!(text, "\n{ddl}");
                }
                let structured = serde_json::to_value(&d).unwrap_or_default();
                ToolOutput::structured(structured).with_text(text.trim_end())
            }
            Err(e) => warehouse_error(&e),
        }
    }

    async fn run(
        &self,
        ctx: &Context,
        tool: &str,
        sql: &str,
        database: Option<String>,
        schema: Option<String>,
        limit: usize,
    ) -> ToolOutput {
        // A client that asked for progress hears, while the warehouse
        // reports the statement still running, how long it has run.
        // (Nothing is set up for the others: no channel per call.)
        let (progress, mut running) = match ctx.progress_token() {
            Some(_) => {
                let (tx, rx) = tokio::sync::watch::channel(std::time::Duration::ZERO);
                let report = Progress::new(move |elapsed| {
                    let _ = tx.send(elapsed);
                });
                (Some(report), Some(rx))
            }
            None => (None, None),
        };
        let options = QueryOptions {
            database,
            schema,
            max_rows: limit.clamp(1, self.config.max_limit),
            max_bytes: self.config.max_result_bytes,
            origin: Some(origin(ctx, tool)),
            progress,
        };
        let query = self.warehouse.query(sql, &options);
        tokio::pin!(query);
        let outcome = loop {
            let Some(rx) = running.as_mut() else {
                break query.await;
            };
            tokio::select! {
                outcome = &mut query => break outcome,
                changed = rx.changed() => {
                    if changed.is_err() {
                        running = None;
                        continue;
                    }
                    let secs = rx.borrow_and_update().as_secs_f64();
                    let note = format!("the statement is still running ({secs:.0} s)");
                    ctx.progress(secs, None, Some(&note)).await;
                }
            }
        };
        match outcome {
            Ok(result) if result_weight(&result) > SHAPE_INLINE_BYTES => {
                // Shaping a large result (its JSON and text table) takes
                // milliseconds of CPU: off the async workers, so the other
                // clients' small calls keep being served meanwhile.
                let config = self.config.clone();
                ctx.run_heavy(move || result_output(&result, &config))
                    .await
                    .unwrap_or_else(|| ToolOutput::error("could not shape the result"))
            }
            Ok(result) => result_output(&result, &self.config),
            Err(e) => warehouse_error(&e),
        }
    }
}

/// Who a statement runs for, for the warehouse's query history: the
/// tool, the client's name, and the name of the key it used or the subject
/// of its OAuth token, if any.
fn origin(ctx: &Context, tool: &str) -> QueryOrigin {
    let name = ctx
        .client_info()
        .and_then(|c| c["name"].as_str())
        .unwrap_or("unknown");
    let principal = ctx.client_key();
    let client = if let Some(key) = principal.strip_prefix("key:") {
        format!("{name} key={key}")
    } else if let Some(subject) = principal.strip_prefix("sub:") {
        // An OAuth caller: the token's subject.
        format!("{name} sub={subject}")
    } else {
        name.to_owned()
    };
    QueryOrigin {
        tool: tool.to_owned(),
        client: client.chars().take(200).collect(),
    }
}

/// Statements longer than this are checked by the guard on a blocking
/// thread. Default: 16 KiB.
const GUARD_INLINE_BYTES: usize = 16 * 1024;

/// Results heavier than this are shaped on a blocking thread. Default: 64 KiB.
const SHAPE_INLINE_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_schemas_say_what_the_hand_written_ones_said() {
        let schema = crate::mcp::schema_of::<ViewArgs>();
        assert_eq!(schema["type"], "object", "{schema}");
        assert_eq!(
            schema["required"],
            json!(["database", "view_name"]),
            "{schema}"
        );
        assert_eq!(
            schema["properties"]["database"],
            json!({"type": "string", "description": "Database name"})
        );
        // Optional: a string or null, not required.
        assert_eq!(
            schema["properties"]["schema"]["type"],
            json!(["string", "null"])
        );
        assert!(schema.get("$schema").is_none() && schema.get("$defs").is_none());
        let config = ToolsConfig::default();
        let limited = with_limit::<ExecuteArgs>(&config);
        assert_eq!(limited["required"], json!(["query"]));
        assert_eq!(
            limited["properties"]["limit"]["maximum"],
            json!(config.max_limit)
        );
        assert_eq!(limited["properties"]["limit"]["minimum"], json!(1));
    }
}
