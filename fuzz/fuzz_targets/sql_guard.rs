//! Arbitrary text, and deep or long expressions grown from it, through the
//! read-only SQL guard, in both dialects.
//!
//! Must never panic nor overflow the stack of a thread the size of a tokio
//! worker's (2 MiB), and must never let through a statement whose kind is
//! not on the allow-list: whatever it accepts is tokenized and parsed again
//! independently (each statement of a Snowflake `->>` chain on its own) and
//! every statement in each tree (nested ones included) is checked against
//! the read-only kinds, with no comment anywhere in the text.
//!
//! The first byte picks the mode: bit 0 grows the rest (`unit|tail`:
//! `SELECT` + `unit` repeated up to ~2,500 times (8 KiB) + `tail`, so chains and
//! nesting far past the limits are tried), bit 1 picks SQLite's dialect.
//!
//! Inputs run on one long-lived thread with a tokio worker's stack (not a
//! thread per input), and grown statements stop at 8 KiB (five times the
//! longest chain the guard lets through): a long run reaches millions of
//! executions.
#![no_main]

use std::ops::ControlFlow;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use snowflake_mcp::tools::sql_guard::{SqlDialect, SqlGuard, StatementKind};
use sqlparser::ast::{Statement, Visit, Visitor};
use sqlparser::dialect::{Dialect, SQLiteDialect, SnowflakeDialect};
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

/// Most bytes a grown statement takes: 512 operators (the guard's limit)
/// of `+1` are about 1 KiB; 8 KiB is far past it and quick to fuzz.
const MAX_GROWN: usize = 8 * 1024;

/// `SELECT` + the part before the first `|` repeated + the rest.
fn grow(text: &str, mode: u8) -> String {
    let (unit, tail) = text.split_once('|').unwrap_or((text, ""));
    // Up to ~2,500 repetitions and 8 KiB: far past the guard's limits
    // (48 levels, 512 operators), small enough to fuzz quickly.
    let times = usize::from(mode >> 2) * 40 + unit.len() % 41;
    let mut sql = String::with_capacity(7 + (unit.len() * times).min(MAX_GROWN) + tail.len());
    sql.push_str("SELECT ");
    for _ in 0..times {
        if sql.len() + unit.len() > MAX_GROWN {
            break;
        }
        sql.push_str(unit);
    }
    sql.push_str(tail);
    sql
}

/// The guard's verdict, re-checked independently when it accepted.
fn check(sql: &str, dialect: SqlDialect) {
    let Ok(kind) = SqlGuard::read_only().check_for(sql, dialect) else {
        return;
    };
    assert!(
        StatementKind::READ_ONLY.contains(&kind),
        "{kind:?} accepted"
    );
    let (parser_dialect, flow): (&dyn Dialect, bool) = match dialect {
        SqlDialect::Sqlite => (&SQLiteDialect {}, false),
        _ => (&SnowflakeDialect {}, true),
    };
    let tokens = Tokenizer::new(parser_dialect, sql)
        .tokenize()
        .expect("accepted text tokenizes");
    assert!(!tokens.iter().any(|t| matches!(
        t,
        Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_))
    )));
    let parts: Vec<Vec<Token>> = if flow {
        tokens
            .split(|t| *t == Token::LongArrow)
            .map(<[Token]>::to_vec)
            .collect()
    } else {
        vec![tokens]
    };
    for part in parts {
        let statements = Parser::new(parser_dialect)
            .with_recursion_limit(64)
            .with_tokens(part)
            .parse_statements()
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
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let sql = if mode & 1 == 1 {
        grow(text, mode)
    } else {
        text.to_owned()
    };
    let dialect = if mode & 2 == 2 {
        SqlDialect::Sqlite
    } else {
        SqlDialect::Snowflake
    };
    // On a thread with a tokio worker's stack, as a real call has: an
    // overflow there kills the process, which the fuzzer reports; a panic
    // comes back here and is raised again.
    let worker = WORKER
        .get_or_init(Worker::start)
        .lock()
        .expect("the worker");
    worker.jobs.send((sql, dialect)).expect("the worker runs");
    if let Err(panic) = worker.done.recv().expect("the worker answers") {
        std::panic::resume_unwind(panic);
    }
});

type Outcome = std::thread::Result<()>;

/// The long-lived thread inputs are checked on, and its channels.
struct Worker {
    jobs: Sender<(String, SqlDialect)>,
    done: Receiver<Outcome>,
}

static WORKER: OnceLock<Mutex<Worker>> = OnceLock::new();

impl Worker {
    fn start() -> Mutex<Worker> {
        let (jobs, inbox) = channel::<(String, SqlDialect)>();
        let (outbox, done) = channel::<Outcome>();
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                for (sql, dialect) in inbox {
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        check(&sql, dialect)
                    }));
                    if outbox.send(outcome).is_err() {
                        return;
                    }
                }
            })
            .expect("a thread");
        Mutex::new(Worker { jobs, done })
    }
}
