//! Snowflake results (Arrow batches, or a JSON rowset) to exact JSON values.
//!
//! Snowflake's Arrow carries its own type in each field's metadata
//! (`logicalType`, `precision`, `scale`): `FIXED` numbers are integers
//! scaled by `scale` (or Decimal128), timestamps are integers or structs of
//! `epoch` seconds, `fraction` nanoseconds and, for `TIMESTAMP_TZ`, a
//! `timezone` (offset in minutes + 1440). Values come out as: exact decimal
//! strings for scaled numbers; integers as numbers when they fit 53 bits
//! (else strings); dates `YYYY-MM-DD`; timestamps ISO 8601 with nanoseconds,
//! `Z` for LTZ (UTC) and the offset for TZ; VARIANT/OBJECT/ARRAY as JSON;
//! binary as base64.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field};
use base64::Engine as _;
use serde_json::Value;

use crate::warehouse::{Column, QueryOptions, QueryResult, Truncation, push_row};

/// Largest integer a JSON number carries exactly in every client (2^53).
const EXACT_INT: i128 = 1 << 53;

/// How one column is read.
#[derive(Clone, Debug)]
struct ColumnKind {
    logical: String,
    precision: Option<i64>,
    scale: i64,
}

impl ColumnKind {
    fn of(field: &Field) -> ColumnKind {
        let meta = field.metadata();
        let num = |k: &str| meta.get(k).and_then(|v| v.parse::<i64>().ok());
        let logical = meta
            .get("logicalType")
            .cloned()
            .unwrap_or_else(|| arrow_logical(field.data_type()).to_owned())
            .to_ascii_uppercase();
        ColumnKind {
            logical,
            precision: num("precision"),
            scale: num("scale").unwrap_or(0),
        }
    }

    /// The kind of a `rowtype` entry.
    fn json(t: &str, precision: Option<i64>, scale: Option<i64>) -> ColumnKind {
        ColumnKind {
            logical: t.to_ascii_uppercase(),
            precision,
            scale: scale.unwrap_or(0),
        }
    }

    fn type_name(&self) -> String {
        match self.logical.as_str() {
            "FIXED" => format!("NUMBER({},{})", self.precision.unwrap_or(38), self.scale),
            other => other.to_owned(),
        }
    }
}

/// A logical type for Arrow fields without Snowflake metadata.
fn arrow_logical(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "BOOLEAN",
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Decimal128(..) => "FIXED",
        DataType::Float32 | DataType::Float64 => "REAL",
        DataType::Date32 => "DATE",
        DataType::Binary | DataType::LargeBinary => "BINARY",
        _ => "TEXT",
    }
}

/// A result filled part by part (the inline part, then chunk after chunk)
/// until the row limit or the byte cap says stop.
pub(crate) struct RowSink<'o> {
    result: QueryResult,
    bytes: usize,
    options: &'o QueryOptions,
}

impl<'o> RowSink<'o> {
    /// An empty result with these caps.
    pub fn new(options: &'o QueryOptions) -> RowSink<'o> {
        RowSink {
            result: QueryResult::default(),
            bytes: 0,
            options,
        }
    }

    /// Sets the columns from Snowflake's `rowtype` (name, type, precision, scale).
    pub fn set_columns(&mut self, rowtype: &[(String, String, Option<i64>, Option<i64>)]) {
        self.result.columns = rowtype
            .iter()
            .map(|(name, t, precision, scale)| Column {
                name: name.clone(),
                type_name: ColumnKind::json(t, *precision, *scale).type_name(),
            })
            .collect();
    }

    /// Whether no more rows are wanted (the limit is reached, or a row was
    /// already refused for the cap).
    pub fn is_full(&self) -> bool {
        self.result.truncated || self.result.rows.len() >= self.options.max_rows
    }

    /// Notes that rows exist beyond what was read (not downloaded since
    /// the result is full).
    pub fn more_rows_exist(&mut self) {
        if !self.result.truncated {
            self.result.truncated = true;
            self.result.truncated_by = Some(Truncation::Rows(self.options.max_rows));
        }
    }

    /// Adds the rows of an Arrow batch; false once full.
    pub fn push_batch(&mut self, batch: &RecordBatch) -> bool {
        if self.result.columns.is_empty() {
            self.result.columns = batch
                .schema()
                .fields()
                .iter()
                .map(|f| Column {
                    name: f.name().clone(),
                    type_name: ColumnKind::of(f).type_name(),
                })
                .collect();
        }
        let kinds: Vec<ColumnKind> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| ColumnKind::of(f))
            .collect();
        for row in 0..batch.num_rows() {
            if self.is_full() {
                self.more_rows_exist();
                return false;
            }
            let values = batch
                .columns()
                .iter()
                .zip(&kinds)
                .map(|(col, kind)| value_at(col, row, kind))
                .collect();
            if !push_row(&mut self.result, values, self.options, &mut self.bytes) {
                return false;
            }
        }
        !self.is_full()
    }

    /// Adds rows of a JSON rowset (`[[text or null, ...], ...]`) typed by
    /// `rowtype`; false once full.
    pub fn push_json(
        &mut self,
        rows: &[Vec<Value>],
        rowtype: &[(String, String, Option<i64>, Option<i64>)],
    ) -> bool {
        for row in rows {
            if self.is_full() {
                self.more_rows_exist();
                return false;
            }
            let values = row
                .iter()
                .zip(rowtype)
                .map(|(v, (_, t, _, scale))| json_value(v, t, *scale))
                .collect();
            if !push_row(&mut self.result, values, self.options, &mut self.bytes) {
                return false;
            }
        }
        !self.is_full()
    }

    /// The result.
    pub fn finish(self) -> QueryResult {
        self.result
    }
}

/// A JSON rowset value in its final form.
fn json_value(v: &Value, t: &str, scale: Option<i64>) -> Value {
    match (v, t.to_ascii_uppercase().as_str()) {
        (Value::String(s), "FIXED") if scale.unwrap_or(0) == 0 => s
            .parse::<i64>()
            .ok()
            .filter(|i| (i128::from(*i)).abs() <= EXACT_INT)
            .map_or_else(|| Value::String(s.clone()), Value::from),
        (Value::String(s), "BOOLEAN") => Value::Bool(s == "1" || s.eq_ignore_ascii_case("true")),
        (other, _) => other.clone(),
    }
}

fn integer(v: i128, scale: i64) -> Value {
    if scale <= 0 {
        if v.abs() <= EXACT_INT {
            return Value::from(v as i64);
        }
        return Value::String(v.to_string());
    }
    Value::String(scaled(v, scale as u32))
}

/// `v / 10^scale` as exact decimal text.
fn scaled(v: i128, scale: u32) -> String {
    let negative = v < 0;
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if negative { "-" } else { "" })
}

fn value_at(col: &ArrayRef, row: usize, kind: &ColumnKind) -> Value {
    if col.is_null(row) {
        return Value::Null;
    }
    let logical = kind.logical.as_str();
    match logical {
        "TIMESTAMP_NTZ" | "TIMESTAMP_LTZ" | "TIMESTAMP_TZ" => return timestamp(col, row, kind),
        "TIME" => {
            if let Some(v) = int_at(col, row) {
                return Value::String(time_of_day(v, kind.scale));
            }
        }
        "DATE" => {
            if let DataType::Date32 = col.data_type() {
                let days = col.as_primitive::<Date32Type>().value(row);
                return Value::String(date(i64::from(days)));
            }
        }
        "VARIANT" | "OBJECT" | "ARRAY" | "MAP" => {
            if let Some(s) = str_at(col, row) {
                return serde_json::from_str(&s).unwrap_or(Value::String(s));
            }
        }
        _ => {}
    }
    match col.data_type() {
        DataType::Boolean => Value::Bool(col.as_boolean().value(row)),
        DataType::Decimal128(_, s) => {
            let v = col.as_primitive::<Decimal128Type>().value(row);
            integer(v, i64::from(*s))
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            integer(i128::from(int_at(col, row).unwrap_or_default()), kind.scale)
        }
        DataType::Float64 => float(col.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => float(f64::from(col.as_primitive::<Float32Type>().value(row))),
        DataType::Binary => Value::String(
            base64::engine::general_purpose::STANDARD.encode(col.as_binary::<i32>().value(row)),
        ),
        DataType::LargeBinary => Value::String(
            base64::engine::general_purpose::STANDARD.encode(col.as_binary::<i64>().value(row)),
        ),
        DataType::Date32 => {
            Value::String(date(i64::from(col.as_primitive::<Date32Type>().value(row))))
        }
        _ => str_at(col, row).map_or(Value::Null, Value::String),
    }
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(f.to_string()))
}

fn int_at(col: &ArrayRef, row: usize) -> Option<i64> {
    Some(match col.data_type() {
        DataType::Int8 => i64::from(col.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => i64::from(col.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => i64::from(col.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row),
        _ => return None,
    })
}

fn str_at(col: &ArrayRef, row: usize) -> Option<String> {
    match col.data_type() {
        DataType::Utf8 => Some(col.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Some(col.as_string::<i64>().value(row).to_owned()),
        _ => None,
    }
}

/// A timestamp from an integer (scaled by `scale`) or an epoch/fraction(/timezone) struct.
fn timestamp(col: &ArrayRef, row: usize, kind: &ColumnKind) -> Value {
    let (seconds, nanos, offset_minutes) = match col.data_type() {
        DataType::Struct(_) => {
            let s: &StructArray = col.as_struct();
            let field = |name: &str| s.column_by_name(name).and_then(|c| int_at(c, row));
            let epoch = field("epoch").unwrap_or_default();
            let fraction = field("fraction").unwrap_or_default();
            let tz = field("timezone").map(|t| t - 1440);
            (epoch, fraction, tz)
        }
        _ => {
            let Some(v) = int_at(col, row) else {
                return Value::Null;
            };
            let unit = 10i64.pow(kind.scale.clamp(0, 9) as u32);
            let seconds = v.div_euclid(unit);
            let nanos = v.rem_euclid(unit) * 10i64.pow(9 - kind.scale.clamp(0, 9) as u32);
            (seconds, nanos, None)
        }
    };
    let zone = match (kind.logical.as_str(), offset_minutes) {
        ("TIMESTAMP_TZ", Some(m)) => Some(m),
        ("TIMESTAMP_TZ" | "TIMESTAMP_LTZ", None) => Some(0),
        _ => None,
    };
    let local = seconds + zone.unwrap_or(0) * 60;
    let mut text = format!(
        "{}T{}",
        date(local.div_euclid(86_400)),
        clock(local.rem_euclid(86_400), nanos)
    );
    match zone {
        Some(0) if kind.logical == "TIMESTAMP_LTZ" => text.push('Z'),
        Some(m) => {
            let sign = if m < 0 { '-' } else { '+' };
            text.push_str(&format!("{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60));
        }
        None => {}
    }
    Value::String(text)
}

fn time_of_day(v: i64, scale: i64) -> String {
    let unit = 10i64.pow(scale.clamp(0, 9) as u32);
    let nanos = v.rem_euclid(unit) * 10i64.pow(9 - scale.clamp(0, 9) as u32);
    clock(v.div_euclid(unit).rem_euclid(86_400), nanos)
}

/// `HH:MM:SS` plus `.fffffffff` when there are nanoseconds (trailing zeros trimmed).
fn clock(secs: i64, nanos: i64) -> String {
    let mut out = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
fn date(days: i64) -> String {
    let (y, m, d) = crate::util::date::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_numbers_are_exact() {
        assert_eq!(scaled(1999, 2), "19.99");
        assert_eq!(scaled(-5, 3), "-0.005");
        assert_eq!(scaled(0, 2), "0.00");
        assert_eq!(
            scaled(123_456_789_012_345_678_901_234_567_890, 10),
            "12345678901234567890.1234567890"
        );
        assert_eq!(integer(9_007_199_254_740_993, 0), "9007199254740993");
        assert_eq!(integer(42, 0), 42);
    }

    #[test]
    fn clocks_and_dates() {
        assert_eq!(clock(3661, 0), "01:01:01");
        assert_eq!(clock(3661, 500_000_000), "01:01:01.5");
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(time_of_day(45_296_789, 3), "12:34:56.789");
    }
}
