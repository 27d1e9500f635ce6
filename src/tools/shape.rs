//! Shaping what the warehouse returned into tool answers: the JSON
//! (`structuredContent`), a readable text table, the notice of a cut
//! result, and errors.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::ToolsConfig;
use crate::mcp::ToolOutput;
use crate::util::offload::TURN_BYTES;
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

/// Appends `s` with its line breaks and pipes made spaces (they would
/// break the table's rows), at most [`TURN_BYTES`] bytes between turns.
fn push_flat(out: &mut String, s: &str) {
    let mut rest = s;
    while !rest.is_empty() {
        let window = &rest.as_bytes()[..rest.len().min(TURN_BYTES)];
        match window
            .iter()
            .position(|c| matches!(c, b'\n' | b'\r' | b'|'))
        {
            // An ASCII byte: both sides of it are character boundaries.
            Some(at) => {
                out.push_str(&rest[..at]);
                out.push(' ');
                rest = &rest[at + 1..];
            }
            None => {
                let mut end = window.len();
                while !rest.is_char_boundary(end) {
                    end -= 1;
                }
                out.push_str(&rest[..end]);
                rest = &rest[end..];
                let _ = crate::util::offload::checkpoint();
            }
        }
    }
}

/// A readable table: a header, a rule, the rows; NULL for nulls. Built on
/// a heavy-work thread for a large result, with a turn given after every
/// 64 KiB of it (`crate::util::offload::checkpoint`).
fn text_table(result: &QueryResult) -> String {
    if result.columns.is_empty() {
        return "(statement ran; no result set)".into();
    }
    let mut out = String::new();
    let header: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    let mut mark = out.len();
    for row in &result.rows {
        out.push_str("| ");
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            match v {
                Value::Null => out.push_str("NULL"),
                Value::String(s) => push_flat(&mut out, s),
                other => {
                    let _ = write!(out, "{other}");
                }
            }
        }
        out.push_str(" |\n");
        if out.len() - mark >= TURN_BYTES {
            let _ = crate::util::offload::checkpoint();
            mark = out.len();
        }
    }
    let n = result.rows.len();
    let _ = write!(out, "({n} row{})", if n == 1 { "" } else { "s" });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_flattened_in_pieces_as_replace_does() {
        let unit = "a|b\nc\r€😀é xyz";
        let mut long = String::new();
        while long.len() < 3 * TURN_BYTES + 100 {
            long.push_str(unit);
        }
        // No break for more than a piece, and a wide character across its end.
        let plain = format!("{}😀{}", "x".repeat(TURN_BYTES - 2), "y".repeat(TURN_BYTES));
        for s in ["", "|", "\n\r|", "plain", unit, &long, &plain] {
            let mut out = String::from("> ");
            push_flat(&mut out, s);
            assert_eq!(out, format!("> {}", s.replace(['\n', '\r', '|'], " ")));
        }
    }
}
