//! Running a statement into rows: SQLite's values as JSON, by declared
//! type, with the byte cap applied cell by cell.

use super::*;

/// How a column's values are rendered, from its declared type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Render {
    /// `DECIMAL(p,s)` and friends: exact text with `s` digits.
    Decimal(usize),
    /// Anything else: by the value's own SQLite type.
    Plain,
}

pub(super) fn render_of(declared: Option<&str>) -> Render {
    let Some(declared) = declared else {
        return Render::Plain;
    };
    let upper = declared.to_ascii_uppercase();
    let numeric = ["DECIMAL", "NUMERIC", "NUMBER"]
        .iter()
        .any(|p| upper.starts_with(p));
    if !numeric {
        return Render::Plain;
    }
    let scale = upper
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(args, _)| args.split_once(','))
        .and_then(|(_, s)| s.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if scale == 0 {
        Render::Plain
    } else {
        Render::Decimal(scale.min(18))
    }
}

/// Largest integer a JSON number carries exactly in every client (2^53).
pub(super) const EXACT_INT: i64 = 1 << 53;

/// `v` as JSON, a text or blob cut to at most about `cap` bytes (marked
/// with [`super::CUT_MARKER`]), so a huge value is never copied whole;
/// the second value says whether it was cut.
pub(super) fn value_capped(v: ValueRef<'_>, render: Render, cap: usize) -> (Value, bool) {
    match v {
        ValueRef::Text(t) if t.len() + 2 > cap => {
            let keep = String::from_utf8_lossy(&t[..cap.saturating_sub(2).min(t.len())]);
            (super::super::cut_string(&keep, cap), true)
        }
        ValueRef::Blob(b) if b.len().div_ceil(3) * 4 + 2 > cap => {
            let keep = (cap.saturating_sub(2) / 4 * 3).min(b.len());
            let encoded = base64::engine::general_purpose::STANDARD.encode(&b[..keep]);
            (super::super::cut_string(&encoded, cap), true)
        }
        _ => (value_of(v, render), false),
    }
}

pub(super) fn value_of(v: ValueRef<'_>, render: Render) -> Value {
    match (v, render) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(i), Render::Decimal(scale)) => {
            Value::String(format!("{i}.{}", "0".repeat(scale)))
        }
        (ValueRef::Real(f), Render::Decimal(scale)) => Value::String(format!("{f:.scale$}")),
        (ValueRef::Integer(i), Render::Plain) => {
            if (-EXACT_INT..=EXACT_INT).contains(&i) {
                Value::from(i)
            } else {
                Value::String(i.to_string())
            }
        }
        (ValueRef::Real(f), Render::Plain) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        (ValueRef::Text(t), _) => Value::String(String::from_utf8_lossy(t).into_owned()),
        (ValueRef::Blob(b), _) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}

pub(super) fn type_of(v: ValueRef<'_>) -> Option<&'static str> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(_) => Some("INTEGER"),
        ValueRef::Real(_) => Some("REAL"),
        ValueRef::Text(_) => Some("TEXT"),
        ValueRef::Blob(_) => Some("BLOB"),
    }
}

/// Runs one statement and gathers its rows within the budget.
pub(super) fn run(
    conn: &Connection,
    sql: &str,
    options: &QueryOptions,
) -> Result<QueryResult, WarehouseError> {
    let mut stmt = conn.prepare(sql).map_err(sqlite_error)?;
    let declared: Vec<(String, Option<String>)> = stmt
        .columns()
        .map(|c| {
            (
                c.name().to_owned(),
                c.decl_type().map(str::to_ascii_uppercase),
            )
        })
        .collect();
    let renders: Vec<Render> = declared
        .iter()
        .map(|(_, d)| render_of(d.as_deref()))
        .collect();
    let mut inferred: Vec<Option<&'static str>> = vec![None; declared.len()];
    let mut result = QueryResult::default();
    let mut bytes = 0usize;
    let mut rows = stmt.query([]).map_err(sqlite_error)?;
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        if result.rows.len() >= options.max_rows {
            result.truncated = true;
            result.truncated_by = Some(Truncation::Rows(options.max_rows));
            break;
        }
        let mut values = Vec::with_capacity(renders.len());
        // What this row may still take of the byte budget: no cell is
        // copied out of SQLite past it.
        let mut left = options.max_bytes.saturating_sub(bytes);
        let mut cut = false;
        for (i, render) in renders.iter().enumerate() {
            let v = row.get_ref(i).map_err(sqlite_error)?;
            if inferred[i].is_none() {
                inferred[i] = type_of(v);
            }
            let (value, was_cut) = value_capped(v, *render, left);
            left = left.saturating_sub(super::super::json_len(&value) + 1);
            cut |= was_cut;
            values.push(value);
        }
        if cut {
            // The row did not fit whole: the first one is kept with its
            // values cut; after others, the result ends here.
            result.truncated = true;
            if result.rows.is_empty() {
                result.truncated_by = Some(Truncation::Cells(options.max_bytes));
                result.rows.push(values);
            } else {
                result.truncated_by = Some(Truncation::Bytes(options.max_bytes));
            }
            break;
        }
        if !push_row(&mut result, values, options, &mut bytes) {
            break;
        }
    }
    result.columns = declared
        .into_iter()
        .zip(inferred)
        .map(|((name, declared), seen)| Column {
            name,
            type_name: declared.unwrap_or_else(|| seen.unwrap_or("NULL").to_owned()),
        })
        .collect();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_rendering_is_exact() {
        assert_eq!(render_of(Some("DECIMAL(10,2)")), Render::Decimal(2));
        assert_eq!(render_of(Some("number(38, 4)")), Render::Decimal(4));
        assert_eq!(render_of(Some("NUMBER(38,0)")), Render::Plain);
        assert_eq!(render_of(Some("TEXT")), Render::Plain);
        assert_eq!(value_of(ValueRef::Real(19.99), Render::Decimal(2)), "19.99");
        assert_eq!(
            value_of(ValueRef::Real(0.1 + 0.2), Render::Decimal(2)),
            "0.30"
        );
        assert_eq!(value_of(ValueRef::Integer(12), Render::Decimal(2)), "12.00");
        assert_eq!(
            value_of(ValueRef::Integer(1 << 60), Render::Plain),
            "1152921504606846976"
        );
        assert_eq!(value_of(ValueRef::Integer(42), Render::Plain), 42);
        assert_eq!(value_of(ValueRef::Blob(&[0, 1, 2]), Render::Plain), "AAEC");
        assert_eq!(value_of(ValueRef::Null, Render::Decimal(2)), Value::Null);
    }
}
