//! A small JSON Schema checker for tool arguments.
//!
//! It covers what tool input schemas use in practice: `type` (one or a
//! list), `properties`, `required`, `additionalProperties: false`, `enum`,
//! `const`, `items`, `minimum`/`maximum`, `minLength`/`maxLength`. Anything
//! else is accepted as is. Errors name the path of the offending value.

use serde_json::Value;

use crate::jsonrpc::RawJson;
use crate::jsonrpc::scan::Scanner;

/// A schema read once, when its tool is built, to check arguments on their
/// JSON text without building a `Value` for them. It only ever says "valid"
/// when [`check`] would: anything it cannot be sure of (`enum`, `const`, a
/// number serde_json would refuse, a lone surrogate escape, a failed
/// constraint) is left to [`check`], which decides and names the fault.
#[derive(Debug)]
pub(crate) struct Compiled(Option<Node>);

/// What a schema asks of one value; `None` where [`check`] must decide.
#[derive(Debug)]
struct Node {
    /// The JSON types allowed (`ANY` without a `type`).
    types: u8,
    /// `properties`, each compiled.
    properties: Vec<(String, Option<Node>)>,
    /// `required` (more than 64 names: `None`, left to [`check`]).
    required: Option<Vec<String>>,
    /// `additionalProperties: false`.
    closed: bool,
    /// `items`: absent, or compiled.
    items: Option<Option<Box<Node>>>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
}

const OBJECT: u8 = 1;
const ARRAY: u8 = 2;
const STRING: u8 = 4;
const BOOLEAN: u8 = 8;
const NULL: u8 = 16;
const NUMBER: u8 = 32;
const INTEGER: u8 = 64;
const ANY: u8 = 127;

fn type_bits(t: &str) -> u8 {
    match t {
        "object" => OBJECT,
        "array" => ARRAY,
        "string" => STRING,
        "boolean" => BOOLEAN,
        "null" => NULL,
        "number" => NUMBER,
        "integer" => INTEGER,
        // A type this checker does not know accepts any value.
        _ => ANY,
    }
}

impl Compiled {
    /// Reads `schema` (a tool's input schema).
    pub(crate) fn new(schema: &Value) -> Compiled {
        Compiled(compile(schema))
    }

    /// Whether `arguments` (absent: an empty object) surely pass `schema`
    /// as [`check`] reads it; `false` means "ask [`check`]".
    pub(crate) fn surely_accepts(&self, arguments: Option<&str>) -> bool {
        let Some(node) = &self.0 else {
            return false;
        };
        let text = arguments.unwrap_or("{}");
        // serde_json refuses a lone surrogate escape that the scanner lets
        // through: any `\uD800`-`\uDFFF` escape is left to `check`.
        if text.contains('\\') && has_surrogate_escape(text) {
            return false;
        }
        let mut scanner = Scanner::new(text);
        match scanner.value(0) {
            Ok(raw) => node.accepts(raw),
            Err(_) => false,
        }
    }
}

fn has_surrogate_escape(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(3)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && matches!(w[2], b'd' | b'D'))
}

fn compile(schema: &Value) -> Option<Node> {
    let mut node = Node {
        types: ANY,
        properties: Vec::new(),
        required: Some(Vec::new()),
        closed: false,
        items: None,
        minimum: None,
        maximum: None,
        min_length: None,
        max_length: None,
    };
    let Some(schema) = schema.as_object() else {
        return Some(node);
    };
    if matches!(schema.get("enum"), Some(Value::Array(_))) || schema.contains_key("const") {
        return None;
    }
    node.types = match schema.get("type") {
        Some(Value::String(t)) => type_bits(t),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .fold(0, |b, t| b | type_bits(t)),
        _ => ANY,
    };
    if let Some(Value::Array(required)) = schema.get("required") {
        let names: Vec<String> = required
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        node.required = (names.len() <= 64).then_some(names);
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        node.properties = props.iter().map(|(k, v)| (k.clone(), compile(v))).collect();
    }
    node.closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    node.items = schema
        .get("items")
        .map(|items| compile(items).map(Box::new));
    node.minimum = schema.get("minimum").and_then(Value::as_f64);
    node.maximum = schema.get("maximum").and_then(Value::as_f64);
    node.min_length = schema.get("minLength").and_then(Value::as_u64);
    node.max_length = schema.get("maxLength").and_then(Value::as_u64);
    Some(node)
}

impl Node {
    /// Whether `raw` (validated JSON) surely passes.
    fn accepts(&self, raw: RawJson<'_>) -> bool {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'{') => self.types & OBJECT != 0 && self.accepts_object(text),
            Some(b'[') => self.types & ARRAY != 0 && self.accepts_array(text),
            Some(b'"') => {
                if self.types & STRING == 0 {
                    return false;
                }
                if self.min_length.is_none() && self.max_length.is_none() {
                    // serde_json reads any string but a lone surrogate,
                    // which `surely_accepts` has ruled out.
                    return true;
                }
                let Some(s) = raw.as_str() else {
                    return false;
                };
                let len = s.chars().count() as u64;
                self.min_length.is_none_or(|min| len >= min)
                    && self.max_length.is_none_or(|max| len <= max)
            }
            Some(b't' | b'f') => self.types & BOOLEAN != 0,
            Some(b'n') => self.types & NULL != 0,
            Some(_) => {
                // The value serde_json would give `check` (and `None`
                // where it would refuse the number).
                let Ok(n) = serde_json::from_str::<f64>(text) else {
                    return false;
                };
                self.types & number_bits(n) != 0
                    && self.minimum.is_none_or(|min| n >= min)
                    && self.maximum.is_none_or(|max| n <= max)
            }
            None => false,
        }
    }

    fn accepts_object(&self, text: &str) -> bool {
        let Some(required) = &self.required else {
            return false;
        };
        if required.is_empty() && self.properties.is_empty() && !self.closed {
            return true;
        }
        let mut ok = true;
        let mut seen: u64 = 0;
        let scanned = Scanner::new(text).object(1, |key, value| {
            if !ok {
                return;
            }
            if let Some(i) = required.iter().position(|r| *r == *key) {
                seen |= 1 << i;
            }
            match self.properties.iter().find(|(name, _)| *name == *key) {
                Some((_, Some(sub))) => ok = sub.accepts(value),
                Some((_, None)) => ok = false,
                None => ok = !self.closed,
            }
        });
        let all = if required.len() == 64 {
            u64::MAX
        } else {
            (1u64 << required.len()) - 1
        };
        scanned.is_ok() && ok && seen == all
    }

    fn accepts_array(&self, text: &str) -> bool {
        let sub = match &self.items {
            None => return true,
            Some(None) => return false,
            Some(Some(sub)) => sub,
        };
        Scanner::new(text)
            .array_with(1, |item| {
                if sub.accepts(item) {
                    Ok(())
                } else {
                    Err(crate::jsonrpc::scan::ScanError {
                        at: 0,
                        what: "refused",
                    })
                }
            })
            .is_ok()
    }
}

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
                return Err(format!(
                    "{path}.{}: unknown property",
                    crate::util::Brief(k)
                ));
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

/// Whether `v` is of the type named `t` (any value for a name not known).
fn type_matches(t: &str, v: &Value) -> bool {
    let bits = match v {
        Value::Null => NULL,
        Value::Bool(_) => BOOLEAN,
        Value::String(_) => STRING,
        Value::Array(_) => ARRAY,
        Value::Object(_) => OBJECT,
        // serde_json keeps every number an `f64` can hold (no arbitrary
        // precision), integers exactly.
        Value::Number(n) => number_bits(n.as_f64().unwrap_or(f64::NAN)),
    };
    type_bits(t) & bits != 0
}

/// The type bits a number has: `number`, and `integer` when whole.
fn number_bits(n: f64) -> u8 {
    if n.fract() == 0.0 {
        NUMBER | INTEGER
    } else {
        NUMBER
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

    fn schemas() -> Vec<Value> {
        vec![
            json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": 3},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "ratio": {"type": ["number", "null"], "minimum": -1.5},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "flag": {"type": "boolean"},
                    "nested": {
                        "type": "object",
                        "properties": {"a": {"type": "integer"}},
                        "required": ["a"],
                        "additionalProperties": false
                    }
                },
                "required": ["query"],
                "additionalProperties": false
            }),
            json!({"type": "object"}),
            json!({"type": "object", "properties": {}}),
            json!({"type": "object", "properties": {"mode": {"enum": ["a"]}}}),
            json!({"type": "object", "properties": {"k": {"const": 1}}}),
            json!({"type": ["object", "array"], "items": {"type": "integer"}}),
            json!({"type": "object", "required": ["a", "a"]}),
            json!({"type": "object", "properties": {"a": {"type": "mystery"}}}),
            json!({"type": []}),
            json!(true),
        ]
    }

    /// Argument texts: the edges where the text check and `check` could
    /// part (numbers serde_json refuses, lone surrogates, repeated names,
    /// escaped names, integers written as floats).
    const TEXTS: &[&str] = &[
        "{}",
        "[]",
        "[1, 2]",
        "[1.0, 2e0]",
        "[1.5]",
        r#"{"query": "x"}"#,
        r#"{"query": "xyz", "limit": 1000, "ratio": null, "tags": ["a", "b"], "flag": true}"#,
        r#"{"query": "xyzw"}"#,
        r#"{"query": "\u00e9\u00e9\u00e9"}"#,
        r#"{"query": "x", "limit": 1.0}"#,
        r#"{"query": "x", "limit": 1e400}"#,
        r#"{"query": "x", "limit": 99999999999999999999999}"#,
        r#"{"query": "x", "limit": 0}"#,
        r#"{"query": "x", "ratio": -1.5}"#,
        r#"{"query": "x", "ratio": -1.5000000000000001}"#,
        r#"{"query": "x", "ratio": -1.50000001}"#,
        r#"{"query": "x", "tags": ["\ud800"]}"#,
        r#"{"query": "x", "other": "\uD83D"}"#,
        r#"{"query": "x", "query": 5}"#,
        r#"{"query": 5, "query": "x"}"#,
        r#"{"qu\u0065ry": "x"}"#,
        r#"{"query": "x", "nested": {"a": 1}}"#,
        r#"{"query": "x", "nested": {"a": 1, "b": 2}}"#,
        r#"{"query": "x", "nested": {}}"#,
        r#"{"query": "x", "extra": 1}"#,
        r#"{"mode": "a"}"#,
        r#"{"k": 1}"#,
        r#"{"a": 1}"#,
        r#"{"a": "\\ud800"}"#,
        "null",
        "\"text\"",
        "-0",
    ];

    /// The text check says "valid" only where `check` does, for every
    /// schema and text above; and it is sure for the plain valid calls.
    #[test]
    fn the_text_check_never_accepts_what_check_refuses() {
        for schema in schemas() {
            let compiled = Compiled::new(&schema);
            for text in TEXTS {
                if compiled.surely_accepts(Some(text)) {
                    let value: Value = serde_json::from_str(text)
                        .unwrap_or_else(|e| panic!("{schema} accepted {text}: {e}"));
                    assert_eq!(
                        check(&schema, &value, "arguments"),
                        Ok(()),
                        "{schema} {text}"
                    );
                }
            }
        }
        let tool = Compiled::new(&schemas()[0]);
        for sure in [
            r#"{"query": "x"}"#,
            r#"{"query": "xyz", "limit": 1000, "ratio": null, "tags": ["a", "b"], "flag": true}"#,
            r#"{"query": "\u00e9\u00e9\u00e9"}"#,
            r#"{"query": "x", "limit": 1.0}"#,
            r#"{"qu\u0065ry": "x"}"#,
            r#"{"query": "x", "nested": {"a": 1}}"#,
        ] {
            assert!(tool.surely_accepts(Some(sure)), "{sure}");
        }
        for unsure in [
            r#"{"query": "xyzw"}"#,
            r#"{"query": "x", "limit": 1e400}"#,
            "{}",
        ] {
            assert!(!tool.surely_accepts(Some(unsure)), "{unsure}");
        }
        assert!(Compiled::new(&schemas()[1]).surely_accepts(None));
        assert!(!Compiled::new(&schemas()[3]).surely_accepts(Some(r#"{"mode": "a"}"#)));
    }

    /// The same over many generated texts (a fixed-seed generator over
    /// the shapes the schemas above name).
    #[test]
    fn generated_texts_agree_with_check() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        fn value(next: &mut dyn FnMut(u64) -> u64, depth: u32, out: &mut String) {
            const NAMES: &[&str] = &[
                "query", "limit", "ratio", "tags", "flag", "nested", "a", "k", "mode", "x",
            ];
            const ATOMS: &[&str] = &[
                "0",
                "1",
                "-1",
                "1.5",
                "1.0",
                "1e3",
                "1e400",
                "-1.5",
                "1000",
                "1001",
                "true",
                "null",
                r#""""#,
                r#""x""#,
                r#""xyz""#,
                r#""xyzw""#,
                r#""\ud800""#,
                r#""a""#,
                r#""\u00e9""#,
            ];
            match next(if depth > 2 { 1 } else { 4 }) {
                0 => out.push_str(ATOMS[next(ATOMS.len() as u64) as usize]),
                1 | 2 => {
                    out.push('{');
                    for i in 0..next(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push('"');
                        out.push_str(NAMES[next(NAMES.len() as u64) as usize]);
                        out.push_str("\":");
                        value(next, depth + 1, out);
                    }
                    out.push('}');
                }
                _ => {
                    out.push('[');
                    for i in 0..next(3) {
                        if i > 0 {
                            out.push(',');
                        }
                        value(next, depth + 1, out);
                    }
                    out.push(']');
                }
            }
        }
        let schemas: Vec<(Value, Compiled)> = schemas()
            .into_iter()
            .map(|s| {
                let c = Compiled::new(&s);
                (s, c)
            })
            .collect();
        let mut sure = 0;
        for _ in 0..20_000 {
            let mut text = String::new();
            value(&mut next, 0, &mut text);
            for (schema, compiled) in &schemas {
                if compiled.surely_accepts(Some(&text)) {
                    sure += 1;
                    let value: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{schema} accepted {text}: {e}"));
                    assert_eq!(
                        check(schema, &value, "arguments"),
                        Ok(()),
                        "{schema} {text}"
                    );
                }
            }
        }
        assert!(sure > 10_000, "the text check was sure only {sure} times");
    }
}
