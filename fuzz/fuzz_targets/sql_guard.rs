//! Arbitrary text through the read-only SQL guard.
//!
//! Must never panic (nor overflow the stack), and must never let through a
//! statement whose kind is not on the allow-list: whatever it accepts is
//! parsed again independently and every statement in the tree (nested ones
//! included) is checked against the read-only kinds, with no comment
//! anywhere in the text.
#![no_main]

use std::ops::ControlFlow;

use libfuzzer_sys::fuzz_target;
use snowflake_mcp::tools::sql_guard::{SqlGuard, StatementKind};
use sqlparser::ast::{Statement, Visit, Visitor};
use sqlparser::dialect::SnowflakeDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

struct Kinds(Vec<String>);

impl Visitor for Kinds {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        let name = format!("{s:?}");
        let name: String = name
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        self.0.push(name);
        ControlFlow::Continue(())
    }
}

const READ_ONLY_VARIANTS: &[&str] = &["Query", "ExplainTable", "Explain"];

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let guard = SqlGuard::read_only();
    let Ok(kind) = guard.check(sql) else {
        return;
    };
    assert!(
        StatementKind::READ_ONLY.contains(&kind),
        "{kind:?} accepted"
    );

    let dialect = SnowflakeDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .expect("accepted text tokenizes");
    assert!(!tokens.iter().any(|t| matches!(
        t,
        Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_))
    )));
    let statements = Parser::new(&dialect)
        .with_recursion_limit(64)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .expect("accepted text parses");
    assert_eq!(statements.len(), 1);
    let mut kinds = Kinds(Vec::new());
    let _ = statements[0].visit(&mut kinds);
    for k in &kinds.0 {
        assert!(
            READ_ONLY_VARIANTS.contains(&k.as_str()) || k.starts_with("Show"),
            "statement kind {k} accepted inside {sql:?}"
        );
    }
});
