//! Shaping what the warehouse returned into tool answers: the JSON
//! (`structuredContent`), a readable text table, the notice of a cut
//! result, and errors.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::ToolsConfig;
use crate::mcp::ToolOutput;
use crate::warehouse::{QueryResult, Truncation, WarehouseError};

/// About how many bytes of text a result's values hold (strings by length,
/// anything else counted small), cheaply.
pub(super) fn result_weight(result: &QueryResult) -> usize {
    result
        .rows
        .iter()
        .flatten()
        .map(|v| match v {
            Value::String(s) => s.len(),
            _ => 8,
        })
        .sum()
}

/// The declared shape of a query result's `structuredContent`.
pub(super) fn result_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "type": {"type": "string"}
            }, "required": ["name", "type"]}},
            "rows": {"type": "array", "items": {"type": "array"}},
            "rowCount": {"type": "integer"},
            "truncated": {"type": "boolean"},
            "queryId": {"type": ["string", "null"]},
            "notice": {"type": "string"}
        },
        "required": ["columns", "rows", "rowCount", "truncated"]
    })
}

pub(super) fn names_output(what: &str, names: &[String], structured: Value) -> ToolOutput {
    let text = if names.is_empty() {
        format!("No {what}")
    } else {
        names.join("\n")
    };
    ToolOutput::structured(structured).with_text(text)
}

pub(super) fn warehouse_error(e: &WarehouseError) -> ToolOutput {
    ToolOutput::error(format!("Warehouse error: {e}"))
}

/// The notice for a cut result: what cut it and how to get the rest.
fn truncation_notice(result: &QueryResult, config: &ToolsConfig) -> Option<String> {
    let shown = result.rows.len();
    match result.truncated_by? {
        Truncation::Rows(limit) => Some(if limit < config.max_limit {
            format!(
                "Showing the first {shown} rows; there are more. Pass a larger limit (up to {}), \
                 or narrow the query (WHERE, LIMIT/OFFSET) to see the rest.",
                config.max_limit
            )
        } else {
            format!(
                "Showing the first {shown} rows; there are more. Page through the rest with \
                 LIMIT/OFFSET, or aggregate."
            )
        }),
        Truncation::Bytes(cap) => Some(format!(
            "Showing the first {shown} rows: the result was cut at {cap} bytes. Select fewer \
             columns, or page with LIMIT/OFFSET (for example OFFSET {shown}) to see the rest."
        )),
        Truncation::Cells(cap) => Some(format!(
            "The first row alone is larger than the {cap}-byte result cap: its largest values \
             were cut (each ends with {}) and no further rows are shown. Select a part of the \
             value (SUBSTR, LEFT) or fewer columns.",
            crate::warehouse::CUT_MARKER
        )),
    }
}

pub(super) fn result_output(result: &QueryResult, config: &ToolsConfig) -> ToolOutput {
    let notice = truncation_notice(result, config);
    let mut structured = json!({
        "columns": result.columns,
        "rows": result.rows,
        "rowCount": result.rows.len(),
        "truncated": result.truncated,
        "queryId": result.query_id,
    });
    if let Some(n) = &notice {
        structured["notice"] = n.clone().into();
    }
    let mut text = text_table(result);
    if let Some(n) = notice {
        text.push_str("\n\n");
        text.push_str(&n);
    }
    ToolOutput::structured(structured).with_text(text)
}

/// A readable table: a header, a rule, the rows; NULL for nulls.
fn text_table(result: &QueryResult) -> String {
    if result.columns.is_empty() {
        return "(statement ran; no result set)".into();
    }
    let cell = |v: &Value| match v {
        Value::Null => "NULL".to_owned(),
        Value::String(s) => s.replace(['\n', '\r', '|'], " "),
        other => other.to_string(),
    };
    let mut out = String::new();
    let header: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in &result.rows {
        let cells: Vec<String> = row.iter().map(cell).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let n = result.rows.len();
    let _ = write!(out, "({n} row{})", if n == 1 { "" } else { "s" });
    out
}
