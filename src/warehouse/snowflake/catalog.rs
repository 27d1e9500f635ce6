//! A table's or view's description from `information_schema`: its kind
//! and comment, its columns with their types, and its DDL where the
//! warehouse has it.

use super::*;

/// Describes `database.schema.table` (a table, else a view).
pub(super) async fn describe(
    warehouse: &SnowflakeWarehouse,
    database: &str,
    schema: &str,
    table: &str,
) -> Result<TableDescription, WarehouseError> {
    let (kind, comment) = kind_and_comment(warehouse, database, schema, table).await?;
    let columns = columns(warehouse, database, schema, table).await?;
    let ddl_sql = format!(
        "SELECT GET_DDL({}, {})",
        quote_literal(kind),
        quote_literal(&format!(
            "{}.{}.{}",
            quote_ident(database),
            quote_ident(schema),
            quote_ident(table)
        ))
    );
    // DDL where the warehouse has it; its absence is not an error.
    let ddl = warehouse
        .rows(&ddl_sql)
        .await
        .ok()
        .and_then(|r| r.first().and_then(|r| r.first()).map(text))
        .filter(|d| !d.is_empty());
    Ok(TableDescription {
        database: database.to_owned(),
        schema: schema.to_owned(),
        name: table.to_owned(),
        kind: kind.to_owned(),
        columns,
        ddl,
        comment,
    })
}

/// `TABLE` or `VIEW`, and the comment, of a relation that exists (else
/// "does not exist").
async fn kind_and_comment(
    warehouse: &SnowflakeWarehouse,
    database: &str,
    schema: &str,
    table: &str,
) -> Result<(&'static str, Option<String>), WarehouseError> {
    let found = format!(
        "SELECT table_type, comment FROM {}.information_schema.tables \
         WHERE table_schema = {} AND table_name = {}",
        quote_ident(database),
        quote_literal(schema),
        quote_literal(table)
    );
    let mut rows = warehouse
        .rows(&found)
        .await
        .map_err(|e| not_found(e, database))?;
    if rows.is_empty() {
        let view = format!(
            "SELECT 'VIEW', comment FROM {}.information_schema.views \
             WHERE table_schema = {} AND table_name = {}",
            quote_ident(database),
            quote_literal(schema),
            quote_literal(table)
        );
        rows = warehouse.rows(&view).await?;
    }
    let Some(row) = rows.first() else {
        return Err(WarehouseError::new(
            ErrorKind::NotFound,
            format!("table or view {database}.{schema}.{table} does not exist"),
        ));
    };
    let kind = if text(&row[0]).to_ascii_uppercase().contains("VIEW") {
        "VIEW"
    } else {
        "TABLE"
    };
    Ok((kind, row.get(1).map(text).filter(|c| !c.is_empty())))
}

/// The columns in order, with `NUMBER(p,s)` and `VARCHAR(n)` spelled out.
async fn columns(
    warehouse: &SnowflakeWarehouse,
    database: &str,
    schema: &str,
    table: &str,
) -> Result<Vec<ColumnInfo>, WarehouseError> {
    let columns_sql = format!(
        "SELECT column_name, data_type, is_nullable, column_default, comment, \
         numeric_precision, numeric_scale, character_maximum_length \
         FROM {}.information_schema.columns \
         WHERE table_schema = {} AND table_name = {} ORDER BY ordinal_position",
        quote_ident(database),
        quote_literal(schema),
        quote_literal(table)
    );
    Ok(warehouse
        .rows(&columns_sql)
        .await?
        .iter()
        .map(|r| {
            let base = text(&r[1]).to_ascii_uppercase();
            let type_name = match (base.as_str(), r.get(5), r.get(6), r.get(7)) {
                ("NUMBER", Some(p), Some(s), _) if !p.is_null() => {
                    format!("NUMBER({},{})", text(p), text(s))
                }
                ("TEXT" | "VARCHAR", _, _, Some(l)) if !l.is_null() => {
                    format!("VARCHAR({})", text(l))
                }
                _ => base,
            };
            ColumnInfo {
                name: text(&r[0]),
                type_name,
                nullable: text(&r[2]).eq_ignore_ascii_case("YES"),
                default: r.get(3).map(text).filter(|d| !d.is_empty()),
                comment: r.get(4).map(text).filter(|c| !c.is_empty()),
            }
        })
        .collect())
}
