//! Unit tests of `util/sql_guard.rs`.

use super::*;

fn check(sql: &str) -> Result<StatementKind, Refusal> {
    SqlGuard::read_only().check(sql)
}

#[test]
fn reads_are_allowed() {
    for sql in [
        "SELECT 1",
        "select * from db.sch.t where a = 'x''y' order by 1 limit 10",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "SELECT a FROM t UNION ALL SELECT b FROM u;",
        "SHOW TABLES",
        "SHOW WAREHOUSES",
        "DESCRIBE TABLE t",
        "DESC TABLE db.s.t",
        "EXPLAIN SELECT * FROM t",
        "SELECT parse_json('{\"a\":1}'):a::int",
        "SELECT '-- not a comment', '/* nor this */'",
    ] {
        assert!(check(sql).is_ok(), "{sql}: {:?}", check(sql));
    }
    assert_eq!(check("SHOW TABLES"), Ok(StatementKind::Show));
    assert_eq!(check("DESCRIBE TABLE t"), Ok(StatementKind::Describe));
}

#[test]
fn writes_and_tricks_are_refused() {
    let refused = [
        ("DELETE FROM t", "DELETE statements are not allowed"),
        ("INSERT INTO t VALUES (1)", "INSERT"),
        ("UPDATE t SET a = 1", "UPDATE"),
        ("DROP TABLE t", "DROP"),
        ("CREATE TABLE x (a int)", "CREATE"),
        ("ALTER TABLE t ADD COLUMN b int", "ALTER"),
        ("TRUNCATE TABLE t", "TRUNCATE"),
        ("GRANT SELECT ON t TO ROLE r", "GRANT"),
        (
            "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE",
            "MERGE",
        ),
        ("SELECT 1; DELETE FROM t", "only one statement"),
        ("SELECT 1; SELECT 2", "only one statement"),
        ("SELECT 1 -- hi", "comments"),
        ("SELECT /* x */ 1", "comments"),
        ("/* DELETE */ SELECT 1", "comments"),
        ("", "empty"),
        ("  ;  ", "empty"),
        ("SELEC 1", "could not be parsed"),
        ("SELECT system$cancel_all_queries(1)", "SYSTEM$"),
        ("SELECT * FROM TABLE(SYSTEM$X())", "SYSTEM$"),
        ("USE DATABASE d", "USE"),
        ("CALL p()", "CALL"),
        ("SELECT * INTO t2 FROM t", "INSERT"),
    ];
    for (sql, needle) in refused {
        let refusal = check(sql).expect_err(sql).to_string();
        assert!(
            refusal
                .to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase()),
            "{sql}: {refusal}"
        );
    }
}

#[test]
fn dml_hidden_in_a_cte_is_found() {
    let sql = "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x";
    match check(sql) {
        Err(Refusal::NotAllowed { kind, nested, .. }) => {
            assert_eq!(kind, StatementKind::Delete);
            assert!(nested);
        }
        other => panic!("{sql}: {other:?}"),
    }
    let sql = "WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x";
    assert!(
        matches!(check(sql), Err(Refusal::NotAllowed { nested: true, .. })),
        "{sql}"
    );
    let sql = "EXPLAIN DELETE FROM t";
    assert!(check(sql).is_err(), "{sql}");
}

#[test]
fn opt_in_kinds() {
    let guard = SqlGuard::allowing([StatementKind::Query, StatementKind::Insert]);
    assert_eq!(
        guard.check("INSERT INTO t VALUES (1)"),
        Ok(StatementKind::Insert)
    );
    assert!(guard.check("DELETE FROM t").is_err());
    // Not read-only any more: SYSTEM$ functions are the caller's business.
    assert!(guard.check("SELECT SYSTEM$TYPEOF(1)").is_ok());
    assert_eq!(StatementKind::parse("with"), Some(StatementKind::Query));
    assert_eq!(StatementKind::parse("delete"), Some(StatementKind::Delete));
    assert_eq!(StatementKind::parse("nope"), None);
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let sql = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    assert_eq!(check(&sql), Err(Refusal::TooDeep));
}

/// `n` terms joined by `op`.
fn chain(op: &str, n: usize) -> String {
    format!("SELECT {}", vec!["1"; n].join(op))
}

#[test]
fn long_operator_chains_are_refused_before_parsing() {
    for op in ["+", "*", "||", " OR ", " AND ", "-", " = "] {
        let sql = chain(op, 33_000);
        assert_eq!(check(&sql), Err(Refusal::ChainTooLong), "{op}");
        assert_eq!(
            SqlGuard::read_only().check_for(&sql, SqlDialect::Sqlite),
            Err(Refusal::ChainTooLong),
            "{op}"
        );
    }
    let casts = format!("SELECT 1{}", "::INT".repeat(5000));
    assert_eq!(check(&casts), Err(Refusal::ChainTooLong));
    let msg = Refusal::ChainTooLong.to_string();
    assert!(msg.contains(&MAX_OPERATOR_CHAIN.to_string()), "{msg}");
    // Within the limit, a long chain is fine, and commas start anew.
    assert!(check(&chain(" OR ", MAX_OPERATOR_CHAIN)).is_ok());
    let columns = vec![chain("+", 400).replace("SELECT ", ""); 10].join(", ");
    assert!(check(&format!("SELECT {columns}")).is_ok());
    // Nested levels add up along the path.
    let nested = format!("SELECT {} + ({})", chain("+", 300), chain("+", 300));
    assert_eq!(check(&nested), Err(Refusal::ChainTooLong));
    let deep = format!("SELECT {}1{}", "[".repeat(100), "]".repeat(100));
    assert_eq!(check(&deep), Err(Refusal::TooDeep));
}

#[test]
fn a_long_statement_is_refused_by_its_prefix() {
    // The chain is refused from the first 16 KiB alone: the broken string
    // at the end, which tokenizing the whole text would report first, is
    // never reached.
    for op in ["+", " OR ", "||"] {
        let sql = format!("{} + 'unterminated", chain(op, 33_000));
        assert_eq!(check(&sql), Err(Refusal::ChainTooLong), "{op}");
    }
    let sql = format!(
        "SELECT {}1{} + 'unterminated",
        "(".repeat(20_000),
        ")".repeat(20_000)
    );
    assert_eq!(check(&sql), Err(Refusal::TooDeep));
    // A prefix cut inside a string literal decides nothing; a long
    // statement within the limits passes, and one past them only after
    // its prefix is still refused.
    let literal = format!("SELECT '{}' AS s", "x".repeat(40_000));
    assert!(check(&literal).is_ok());
    let list: Vec<String> = (0..6_000).map(|i| i.to_string()).collect();
    let long_in = format!("SELECT 1 WHERE 1 IN ({})", list.join(", "));
    assert!(long_in.len() > 16 * 1024);
    assert!(check(&long_in).is_ok());
    let late = format!(
        "SELECT '{}' AS s, {}",
        "x".repeat(20_000),
        chain("+", 600).replace("SELECT ", "")
    );
    assert_eq!(check(&late), Err(Refusal::ChainTooLong));
}

/// The largest trees the limits let through are checked and dropped on
/// a thread with tokio's default worker stack (2 MiB), in any build.
#[test]
fn the_worst_allowed_shapes_fit_a_worker_stack() {
    const STACK: usize = 2 * 1024 * 1024;
    let worst = [
        chain("+", MAX_OPERATOR_CHAIN),
        chain(" OR ", MAX_OPERATOR_CHAIN),
        chain("||", MAX_OPERATOR_CHAIN),
        format!("SELECT 1{}", "::INT".repeat(MAX_OPERATOR_CHAIN)),
        format!(
            "SELECT {}{}{}",
            "(1+".repeat(MAX_NESTING),
            "1",
            ")".repeat(MAX_NESTING)
        ),
        format!("SELECT {}1{}", "(SELECT ".repeat(20), ")".repeat(20)),
        format!(
            "SELECT {}{}{}",
            "(".repeat(MAX_NESTING),
            chain(" AND ", MAX_OPERATOR_CHAIN - 1).replace("SELECT ", ""),
            ")".repeat(MAX_NESTING)
        ),
    ];
    let ran = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            worst
                .iter()
                .map(|sql| {
                    (
                        sql.len(),
                        check(sql).is_ok(),
                        SqlGuard::read_only()
                            .check_for(sql, SqlDialect::Sqlite)
                            .is_ok(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .expect("thread")
        .join()
        .expect("no stack overflow");
    assert!(ran.iter().filter(|r| r.1).count() >= 5, "{ran:?}");
}

#[test]
fn every_statement_of_a_flow_chain_is_checked() {
    let sql = "SELECT 1 ->> DELETE FROM customers WHERE id = 1";
    assert!(
        matches!(
            check(sql),
            Err(Refusal::NotAllowed {
                kind: StatementKind::Delete,
                ..
            })
        ),
        "{sql}: {:?}",
        check(sql)
    );
    for sql in [
        "SHOW TABLES ->> DROP TABLE t",
        "SELECT 1 ->> SELECT 2 ->> INSERT INTO t VALUES (1)",
        "SELECT 1 ->>",
        "->> SELECT 1",
        "SELECT (SELECT 1 ->> SELECT 2)",
    ] {
        assert!(check(sql).is_err(), "{sql}");
    }
    assert_eq!(check("SELECT (1 ->> 2)"), Err(Refusal::MisplacedFlow));
    assert_eq!(check("SELECT 1 ->> SELECT 2"), Ok(StatementKind::Query));
    // A writer's allow-list lets the chain through, statement by statement.
    let guard = SqlGuard::allowing([StatementKind::Query, StatementKind::Delete]);
    assert_eq!(
        guard.check("SELECT 1 ->> DELETE FROM t"),
        Ok(StatementKind::Delete)
    );
    // In SQLite, ->> extracts JSON: an ordinary read.
    assert_eq!(
        SqlGuard::read_only().check_for("SELECT '{\"a\":1}' ->> '$.a'", SqlDialect::Sqlite),
        Ok(StatementKind::Query)
    );
}

#[test]
fn scripting_and_dynamic_sql_stay_refused() {
    for sql in [
        "EXECUTE IMMEDIATE 'DELETE FROM t'",
        "EXECUTE IMMEDIATE $$ BEGIN DELETE FROM t; END $$",
        "BEGIN DELETE FROM t; END",
        "BEGIN",
        "DECLARE x INT; BEGIN SELECT 1; END",
        "CALL p()",
    ] {
        assert!(check(sql).is_err(), "{sql}: {:?}", check(sql));
    }
}

#[test]
fn string_literals_are_read_as_the_engine_reads_them() {
    // Snowflake: the backslash escapes the quote, all one literal.
    let sql = "SELECT 'a\\' , f() --'";
    assert_eq!(check(sql), Ok(StatementKind::Query));
    // SQLite: the literal ends at the second quote; a comment follows.
    assert_eq!(
        SqlGuard::read_only().check_for(sql, SqlDialect::Sqlite),
        Err(Refusal::Comment)
    );
}

#[test]
fn identifiers_are_quoted() {
    assert_eq!(quote_ident("orders"), "\"orders\"");
    assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    assert_eq!(
        quote_ident("x\"; DROP TABLE t; --"),
        "\"x\"\"; DROP TABLE t; --\""
    );
}
