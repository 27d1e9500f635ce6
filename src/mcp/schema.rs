//! A small JSON Schema checker for tool arguments.
//!
//! It covers what tool input schemas use in practice: `type` (one or a
//! list), `properties`, `required`, `additionalProperties: false`, `enum`,
//! `const`, `items`, `minimum`/`maximum`, `minLength`/`maxLength`. Anything
//! else is accepted as is. Errors name the path of the offending value.

use serde_json::Value;

/// Checks `value` against `schema`; `Err` names where and why it fails.
pub(crate) fn check(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
    if let Some(t) = schema.get("type") {
        let ok = match t {
            Value::String(t) => type_matches(t, value),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, value)),
            _ => true,
        };
        if !ok {
            return Err(format!(
                "{path}: expected {}, got {}",
                type_name(t),
                kind(value)
            ));
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        return Err(format!(
            "{path}: must be one of {}",
            Value::Array(options.clone())
        ));
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        return Err(format!("{path}: must be {c}"));
    }
    match value {
        Value::Object(map) => check_object(schema, map, path),
        Value::Array(items) => match schema.get("items") {
            Some(item_schema) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| check(item_schema, item, &format!("{path}[{i}]"))),
            None => Ok(()),
        },
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(0.0), path),
        Value::String(s) => check_length(schema, s.chars().count() as u64, path),
        _ => Ok(()),
    }
}

type Schema = serde_json::Map<String, Value>;

/// `required`, `properties` (each checked) and `additionalProperties: false`.
fn check_object(schema: &Schema, map: &Schema, path: &str) -> Result<(), String> {
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                return Err(format!("{path}.{name}: required"));
            }
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, v) in map {
        match props.and_then(|p| p.get(k)) {
            Some(sub) => check(sub, v, &format!("{path}.{k}"))?,
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                return Err(format!("{path}.{k}: unknown property"));
            }
            None => {}
        }
    }
    Ok(())
}

/// `minimum` and `maximum`.
fn check_number(schema: &Schema, n: f64, path: &str) -> Result<(), String> {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        return Err(format!("{path}: must be at least {min}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        return Err(format!("{path}: must be at most {max}"));
    }
    Ok(())
}

/// `minLength` and `maxLength`, in characters.
fn check_length(schema: &Schema, len: u64, path: &str) -> Result<(), String> {
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        return Err(format!("{path}: must have at least {min} characters"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        return Err(format!("{path}: must have at most {max} characters"));
    }
    Ok(())
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn type_name(t: &Value) -> String {
    match t {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_path_and_reason() {
        let schema = json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                "mode": {"enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["query"],
            "additionalProperties": false
        });
        let rows = [
            (json!({"query": "x"}), None),
            (
                json!({"query": "x", "limit": 10, "mode": "a", "tags": ["t"]}),
                None,
            ),
            (json!({}), Some("arguments.query: required")),
            (
                json!({"query": 5}),
                Some("arguments.query: expected string, got number"),
            ),
            (
                json!({"query": ""}),
                Some("arguments.query: must have at least 1 characters"),
            ),
            (
                json!({"query": "x", "limit": 0}),
                Some("arguments.limit: must be at least 1"),
            ),
            (
                json!({"query": "x", "limit": 1.5}),
                Some("arguments.limit: expected integer, got number"),
            ),
            (
                json!({"query": "x", "mode": "c"}),
                Some("arguments.mode: must be one of [\"a\",\"b\"]"),
            ),
            (
                json!({"query": "x", "tags": [1]}),
                Some("arguments.tags[0]: expected string, got number"),
            ),
            (
                json!({"query": "x", "extra": 1}),
                Some("arguments.extra: unknown property"),
            ),
            (json!([1]), Some("arguments: expected object, got array")),
        ];
        for (value, want) in rows {
            assert_eq!(
                check(&schema, &value, "arguments").err().as_deref(),
                want,
                "{value}"
            );
        }
    }
}
