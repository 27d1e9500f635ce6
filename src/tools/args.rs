//! The tools' arguments: their input schemas are derived from these types
//! (`Tool::derived`; doc comments become the descriptions clients see).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ToolsConfig;

/// A database.
#[derive(Deserialize, JsonSchema)]
pub(super) struct DatabaseArg {
    /// Database name
    pub(super) database: String,
}

/// A schema of a database.
#[derive(Deserialize, JsonSchema)]
pub(super) struct SchemaArgs {
    /// Database name
    pub(super) database: String,
    /// Schema name
    pub(super) schema: String,
}

/// A database, and optionally one of its schemas.
#[derive(Deserialize, JsonSchema)]
pub(super) struct OptionalSchemaArgs {
    /// Database name
    pub(super) database: String,
    /// Schema name (all schemas when omitted)
    pub(super) schema: Option<String>,
}

/// A table.
#[derive(Deserialize, JsonSchema)]
pub(super) struct TableArgs {
    /// Database name
    pub(super) database: String,
    /// Schema name
    pub(super) schema: String,
    /// Table name
    pub(super) table: String,
}

/// A view.
#[derive(Deserialize, JsonSchema)]
pub(super) struct ViewArgs {
    /// Database name
    pub(super) database: String,
    /// View name
    pub(super) view_name: String,
    /// Schema name (the warehouse's default schema when omitted)
    pub(super) schema: Option<String>,
}

/// A view to read rows of.
#[derive(Deserialize, JsonSchema)]
pub(super) struct QueryViewArgs {
    /// Database name
    pub(super) database: String,
    /// View name
    pub(super) view_name: String,
    /// Schema name (the warehouse's default schema when omitted)
    pub(super) schema: Option<String>,
    /// Most rows to return
    pub(super) limit: Option<usize>,
}

/// One statement to run.
#[derive(Deserialize, JsonSchema)]
pub(super) struct ExecuteArgs {
    /// One SQL statement
    pub(super) query: String,
    /// Database to run it in
    pub(super) database: Option<String>,
    /// Schema to run it in
    pub(super) schema: Option<String>,
    /// Most rows to return
    pub(super) limit: Option<usize>,
}

/// `A`'s derived schema with its `limit` bounded by the configured
/// maximum (known only at run time).
pub(super) fn with_limit<A: JsonSchema>(config: &ToolsConfig) -> Value {
    let mut schema = crate::mcp::schema_of::<A>();
    schema["properties"]["limit"] = json!({
        "type": "integer",
        "minimum": 1,
        "maximum": config.max_limit,
        "description": format!(
            "Most rows to return (default {}, at most {})",
            config.default_limit, config.max_limit
        )
    });
    schema
}
