//! The read-only guard of `execute_query`: SQL classified by a real parser.
//!
//! The text is tokenized and parsed with `sqlparser`, in the dialect of the
//! warehouse that will run it ([`SqlDialect`]: Snowflake's, or SQLite's for
//! the embedded warehouse, so that string literals and comments are read
//! the way the engine reads them), never matched with patterns. It must be
//! exactly one statement (or, on Snowflake, one chain of statements joined
//! by the flow operator `->>`, each checked on its own), carry no comments,
//! and every statement in it (the top one and any nested in a CTE, a
//! subquery or an `EXPLAIN`) must be of a kind on the allow-list; a
//! `SELECT ... INTO` counts as a write, and `SYSTEM$` functions (which can
//! act on the account) are refused unless writes are allowed. Anything the
//! parser cannot read is refused too: what is not understood does not run.
//!
//! # Bounded work
//!
//! Before anything is parsed, the tokens are measured: parentheses and
//! brackets may nest at most 48 deep (the parser's own recursion limit sits
//! above it), and one expression may
//! chain at most 512 operators (the parser builds
//! `1+1+1...` as a tree as deep as the chain is long, and walking or
//! dropping a deeper tree would need more stack than a worker thread has).
//! Text past either limit is refused with a message naming it, so the tree
//! that is built, walked and dropped is never deeper than those limits
//! allow, whatever a client sends.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, ObjectName, SetExpr, Statement, Visit, Visitor};
use sqlparser::dialect::{Dialect, SQLiteDialect, SnowflakeDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// Whose SQL a warehouse speaks: the guard reads statements the way the
/// engine that runs them will (string escapes, comments, operators).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqlDialect {
    /// Snowflake: backslash escapes in strings, `->>` joins statements.
    #[default]
    Snowflake,
    /// SQLite: a backslash is an ordinary character, `->>` extracts JSON.
    Sqlite,
}

/// Longest statement the guard reads. Default: 1 MiB.
pub(crate) const MAX_SQL_BYTES: usize = 1024 * 1024;
/// Deepest nesting of parentheses and brackets a statement may have.
/// Default: 48 (the parser's own recursion limit sits above it).
pub(crate) const MAX_NESTING: usize = 48;
/// Most operators one expression may chain along any path of nested
/// parentheses (`a + b + c` is two; a comma starts a new expression).
/// Default: 512.
pub(crate) const MAX_OPERATOR_CHAIN: usize = 512;
/// Deepest nesting the parser may descend into (guards the stack). Default: 64.
const MAX_RECURSION: usize = 64;

/// What kind of statement a piece of SQL is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatementKind {
    /// `SELECT`, `WITH ... SELECT`, `VALUES`, set operations.
    Query,
    /// `SHOW ...`.
    Show,
    /// `DESCRIBE` / `DESC`.
    Describe,
    /// `EXPLAIN`.
    Explain,
    /// `INSERT`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `MERGE`.
    Merge,
    /// `TRUNCATE`.
    Truncate,
    /// `CREATE ...`.
    Create,
    /// `ALTER ...`.
    Alter,
    /// `DROP ...`.
    Drop,
    /// `GRANT` / `REVOKE`.
    Grant,
    /// `USE ...`.
    Use,
    /// `COPY INTO`, `PUT`, `GET`, `REMOVE`, `LIST` (stages).
    Copy,
    /// `CALL` of a procedure.
    Call,
    /// `SET`, `ALTER SESSION`, transactions and everything else.
    Other,
}

impl StatementKind {
    /// The kinds `execute_query` runs unless configured otherwise.
    pub const READ_ONLY: [StatementKind; 4] = [
        StatementKind::Query,
        StatementKind::Show,
        StatementKind::Describe,
        StatementKind::Explain,
    ];

    /// Upper-case name, as used in messages and configuration.
    pub fn name(self) -> &'static str {
        match self {
            StatementKind::Query => "SELECT",
            StatementKind::Show => "SHOW",
            StatementKind::Describe => "DESCRIBE",
            StatementKind::Explain => "EXPLAIN",
            StatementKind::Insert => "INSERT",
            StatementKind::Update => "UPDATE",
            StatementKind::Delete => "DELETE",
            StatementKind::Merge => "MERGE",
            StatementKind::Truncate => "TRUNCATE",
            StatementKind::Create => "CREATE",
            StatementKind::Alter => "ALTER",
            StatementKind::Drop => "DROP",
            StatementKind::Grant => "GRANT",
            StatementKind::Use => "USE",
            StatementKind::Copy => "COPY",
            StatementKind::Call => "CALL",
            StatementKind::Other => "OTHER",
        }
    }

    /// The kind named `name` (case-insensitive; `WITH` is `SELECT`).
    pub fn parse(name: &str) -> Option<StatementKind> {
        let all = [
            StatementKind::Query,
            StatementKind::Show,
            StatementKind::Describe,
            StatementKind::Explain,
            StatementKind::Insert,
            StatementKind::Update,
            StatementKind::Delete,
            StatementKind::Merge,
            StatementKind::Truncate,
            StatementKind::Create,
            StatementKind::Alter,
            StatementKind::Drop,
            StatementKind::Grant,
            StatementKind::Use,
            StatementKind::Copy,
            StatementKind::Call,
            StatementKind::Other,
        ];
        let name = name.trim().to_ascii_uppercase();
        if name == "WITH" {
            return Some(StatementKind::Query);
        }
        all.into_iter().find(|k| k.name() == name)
    }

    fn of(statement: &Statement) -> StatementKind {
        match statement {
            Statement::Query(q) if select_into(&q.body) => StatementKind::Insert,
            Statement::Query(_) => StatementKind::Query,
            Statement::ShowFunctions { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowCharset(_)
            | Statement::ShowObjects(_)
            | Statement::ShowTables { .. }
            | Statement::ShowViews { .. }
            | Statement::ShowCollation { .. } => StatementKind::Show,
            Statement::ExplainTable { .. } => StatementKind::Describe,
            Statement::Explain { .. } => StatementKind::Explain,
            Statement::Insert(_) => StatementKind::Insert,
            Statement::Update(_) => StatementKind::Update,
            Statement::Delete(_) => StatementKind::Delete,
            Statement::Merge(_) => StatementKind::Merge,
            Statement::Truncate(_) => StatementKind::Truncate,
            Statement::Drop { .. } => StatementKind::Drop,
            Statement::Grant(_)
            | Statement::GrantRole(_)
            | Statement::Revoke(_)
            | Statement::RevokeRole(_)
            | Statement::Deny(_) => StatementKind::Grant,
            Statement::Use(_) => StatementKind::Use,
            Statement::Copy { .. }
            | Statement::CopyIntoSnowflake { .. }
            | Statement::Put { .. }
            | Statement::List(_)
            | Statement::Remove(_)
            | Statement::Unload { .. } => StatementKind::Copy,
            Statement::Call(_) => StatementKind::Call,
            other => by_name(other),
        }
    }
}

/// Create/Alter/Drop families by their variant name (there are dozens).
fn by_name(statement: &Statement) -> StatementKind {
    let debug = format!("{statement:?}");
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    if name.starts_with("Create") {
        StatementKind::Create
    } else if name.starts_with("Alter") {
        StatementKind::Alter
    } else if name.starts_with("Drop") {
        StatementKind::Drop
    } else {
        StatementKind::Other
    }
}

fn select_into(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(s) => s.into.is_some(),
        SetExpr::Query(q) => select_into(&q.body),
        SetExpr::SetOperation { left, right, .. } => select_into(left) || select_into(right),
        _ => false,
    }
}

/// Why a statement was refused. The message is what the client is told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Nothing but whitespace.
    #[error("the query is empty")]
    Empty,
    /// Longer than 1 MiB.
    #[error("the query is longer than {MAX_SQL_BYTES} bytes")]
    TooLong,
    /// The text holds a comment.
    #[error("comments are not allowed in queries (remove the -- or /* */ part)")]
    Comment,
    /// The parser could not read it.
    #[error("the query could not be parsed as Snowflake SQL: {0}")]
    Unparseable(String),
    /// More than one statement.
    #[error("only one statement per call is allowed (found {0})")]
    MultipleStatements(usize),
    /// A statement kind not on the allow-list (possibly nested in a CTE or subquery).
    #[error("{} statements are not allowed{}; allowed: {}", .kind.name(), if *.nested { " (found inside the query)" } else { "" }, .allowed)]
    NotAllowed {
        /// The refused kind.
        kind: StatementKind,
        /// Whether it was found inside another statement.
        nested: bool,
        /// The allow-list, for the message.
        allowed: String,
    },
    /// A `SYSTEM$` function in read-only mode.
    #[error("the function {0} is not allowed in read-only mode")]
    SystemFunction(String),
    /// Parentheses or brackets nested deeper than 48 (the parser's own recursion limit sits above it).
    #[error("the query nests parentheses or brackets more than {MAX_NESTING} deep")]
    TooDeep,
    /// An expression chaining more than 512 operators.
    #[error(
        "an expression in the query chains more than {MAX_OPERATOR_CHAIN} operators \
         (use IN (...) lists or split the query)"
    )]
    ChainTooLong,
    /// A flow operator (`->>`) where it cannot join statements.
    #[error("the flow operator ->> may only join whole statements")]
    MisplacedFlow,
}

/// The allow-list `execute_query` checks statements against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlGuard {
    allowed: Vec<StatementKind>,
}

impl Default for SqlGuard {
    fn default() -> Self {
        SqlGuard::read_only()
    }
}

impl SqlGuard {
    /// SELECT (and WITH), SHOW, DESCRIBE, EXPLAIN.
    pub fn read_only() -> SqlGuard {
        SqlGuard {
            allowed: StatementKind::READ_ONLY.to_vec(),
        }
    }

    /// Allows these kinds (and only these).
    pub fn allowing(kinds: impl IntoIterator<Item = StatementKind>) -> SqlGuard {
        let mut allowed: Vec<StatementKind> = kinds.into_iter().collect();
        allowed.dedup();
        SqlGuard { allowed }
    }

    /// The allowed kinds.
    pub fn allowed(&self) -> &[StatementKind] {
        &self.allowed
    }

    /// This guard kept to `kinds` too: what it allows and `kinds` names.
    pub fn within(&self, kinds: &[StatementKind]) -> SqlGuard {
        SqlGuard::allowing(self.allowed.iter().copied().filter(|k| kinds.contains(k)))
    }

    fn is_read_only(&self) -> bool {
        self.allowed
            .iter()
            .all(|k| StatementKind::READ_ONLY.contains(k))
    }

    /// Checks `sql` for Snowflake; returns the kind of its one statement
    /// when it may run.
    pub fn check(&self, sql: &str) -> Result<StatementKind, Refusal> {
        self.check_for(sql, SqlDialect::Snowflake)
    }

    /// Checks `sql` as `dialect` reads it; returns the kind of its statement
    /// (of the last one of a `->>` chain) when it may run.
    pub fn check_for(&self, sql: &str, dialect: SqlDialect) -> Result<StatementKind, Refusal> {
        if sql.len() > MAX_SQL_BYTES {
            return Err(Refusal::TooLong);
        }
        match dialect {
            SqlDialect::Snowflake => self.check_tokens(sql, &SnowflakeDialect {}, true),
            SqlDialect::Sqlite => self.check_tokens(sql, &SQLiteDialect {}, false),
        }
    }

    fn check_tokens(
        &self,
        sql: &str,
        dialect: &dyn Dialect,
        flow: bool,
    ) -> Result<StatementKind, Refusal> {
        refuse_by_prefix(sql, dialect)?;
        let tokens = Tokenizer::new(dialect, sql)
            .tokenize()
            .map_err(|e| Refusal::Unparseable(e.to_string()))?;
        let mut meaningful = 0;
        for token in &tokens {
            match token {
                Token::Whitespace(Whitespace::SingleLineComment { .. })
                | Token::Whitespace(Whitespace::MultiLineComment(_)) => {
                    return Err(Refusal::Comment);
                }
                Token::Whitespace(_) | Token::SemiColon | Token::EOF => {}
                _ => meaningful += 1,
            }
        }
        if meaningful == 0 {
            return Err(Refusal::Empty);
        }
        measure(&tokens)?;
        // Snowflake's flow operator runs each statement of a chain in turn:
        // every one of them is checked as a statement of its own.
        let parts = if flow {
            split_flow(tokens)?
        } else {
            vec![tokens]
        };
        let mut kind = StatementKind::Other;
        for part in parts {
            kind = self.check_statement(dialect, part)?;
        }
        Ok(kind)
    }

    /// Parses one statement's tokens and checks every statement in its tree.
    fn check_statement(
        &self,
        dialect: &dyn Dialect,
        tokens: Vec<Token>,
    ) -> Result<StatementKind, Refusal> {
        let statements = Parser::new(dialect)
            .with_recursion_limit(MAX_RECURSION)
            .with_tokens(tokens)
            .parse_statements()
            .map_err(|e| Refusal::Unparseable(e.to_string()))?;
        let [statement] = statements.as_slice() else {
            return Err(Refusal::MultipleStatements(statements.len()));
        };
        let top = StatementKind::of(statement);
        let mut walk = Walk {
            guard: self,
            depth: 0,
        };
        if let ControlFlow::Break(refusal) = statement.visit(&mut walk) {
            return Err(refusal);
        }
        Ok(top)
    }

    fn refuse(&self, kind: StatementKind, nested: bool) -> Refusal {
        let allowed: Vec<&str> = self.allowed.iter().map(|k| k.name()).collect();
        Refusal::NotAllowed {
            kind,
            nested,
            allowed: allowed.join(", "),
        }
    }
}

/// Text measured on its own before a long statement is tokenized whole.
/// Default: 16 KiB.
const PREFIX_BYTES: usize = 16 * 1024;

/// Refuses a long statement whose first [`PREFIX_BYTES`] already nest or
/// chain past the limits, so a refusal costs the same whatever the length
/// (a megabyte of `1+1+...` is not tokenized whole to be turned down).
///
/// Sound because the tokenizer reads left to right: every token that ends
/// before the cut is a token of the whole text too, so what the prefix
/// nests and chains, the whole text does (the last token, perhaps cut in
/// two, is at most one operator more or less, far inside the margin of
/// the limits). A prefix that does not tokenize (cut inside a string
/// literal or a comment) decides nothing: the whole text is checked.
fn refuse_by_prefix(sql: &str, dialect: &dyn Dialect) -> Result<(), Refusal> {
    if sql.len() <= PREFIX_BYTES {
        return Ok(());
    }
    let mut cut = PREFIX_BYTES;
    while !sql.is_char_boundary(cut) {
        cut -= 1;
    }
    let Ok(tokens) = Tokenizer::new(dialect, &sql[..cut]).tokenize() else {
        return Ok(());
    };
    match measure(&tokens[..tokens.len().saturating_sub(1)]) {
        Err(refusal @ (Refusal::TooDeep | Refusal::ChainTooLong)) => Err(refusal),
        _ => Ok(()),
    }
}

/// Refuses token streams whose parse tree could be deeper than the limits
/// allow: nesting past [`MAX_NESTING`], or more than
/// [`MAX_OPERATOR_CHAIN`] operators along one path of open parentheses
/// (each level's count restarts at a comma: siblings are not nested).
fn measure(tokens: &[Token]) -> Result<(), Refusal> {
    // Operators counted at each open level; the sum is the path's chain.
    let mut levels: Vec<usize> = vec![0];
    let mut chain = 0usize;
    for token in tokens {
        match token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                if levels.len() > MAX_NESTING {
                    return Err(Refusal::TooDeep);
                }
                levels.push(0);
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                if levels.len() > 1
                    && let Some(n) = levels.pop()
                {
                    chain -= n;
                }
            }
            Token::Comma | Token::SemiColon => {
                if let Some(n) = levels.last_mut() {
                    chain -= *n;
                    *n = 0;
                }
            }
            t if is_operator(t) => {
                if let Some(n) = levels.last_mut() {
                    *n += 1;
                }
                chain += 1;
                if chain > MAX_OPERATOR_CHAIN {
                    return Err(Refusal::ChainTooLong);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Keywords that join two expressions (or follow one) and so add a level
/// to the tree the parser builds.
const INFIX_KEYWORDS: [Keyword; 16] = [
    Keyword::AND,
    Keyword::OR,
    Keyword::XOR,
    Keyword::NOT,
    Keyword::IS,
    Keyword::IN,
    Keyword::LIKE,
    Keyword::ILIKE,
    Keyword::RLIKE,
    Keyword::REGEXP,
    Keyword::SIMILAR,
    Keyword::BETWEEN,
    Keyword::COLLATE,
    Keyword::AT,
    Keyword::OVERLAPS,
    Keyword::DIV,
];

/// Whether a token may join expressions: every symbol but brackets,
/// commas and semicolons, and the infix keywords. Words, literals and
/// whitespace are not.
fn is_operator(token: &Token) -> bool {
    match token {
        Token::Word(w) => w.quote_style.is_none() && INFIX_KEYWORDS.contains(&w.keyword),
        Token::EOF
        | Token::Whitespace(_)
        | Token::Number(..)
        | Token::Placeholder(_)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::QuoteDelimitedStringLiteral(_)
        | Token::NationalQuoteDelimitedStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_) => false,
        _ => true,
    }
}

/// Splits a Snowflake token stream at its flow operators (`->>`), which
/// join whole statements; one inside parentheses joins nothing and is refused.
fn split_flow(tokens: Vec<Token>) -> Result<Vec<Vec<Token>>, Refusal> {
    if !tokens.contains(&Token::LongArrow) {
        return Ok(vec![tokens]);
    }
    let mut parts = vec![Vec::new()];
    let mut depth = 0usize;
    for token in tokens {
        match token {
            Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            Token::LongArrow if depth > 0 => return Err(Refusal::MisplacedFlow),
            Token::LongArrow => {
                parts.push(Vec::new());
                continue;
            }
            _ => {}
        }
        if let Some(part) = parts.last_mut() {
            part.push(token);
        }
    }
    if parts.iter().any(|p| {
        !p.iter()
            .any(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
    }) {
        return Err(Refusal::MisplacedFlow);
    }
    Ok(parts)
}

/// Visits every statement and function call in the tree.
struct Walk<'g> {
    guard: &'g SqlGuard,
    depth: usize,
}

impl Visitor for Walk<'_> {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        let kind = StatementKind::of(statement);
        let nested = self.depth > 0;
        self.depth += 1;
        if !self.guard.allowed.contains(&kind) {
            return ControlFlow::Break(self.guard.refuse(kind, nested));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, _statement: &Statement) -> ControlFlow<Refusal> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Refusal> {
        if let Expr::Function(f) = expr
            && self.guard.is_read_only()
            && is_system_function(&f.name)
        {
            return ControlFlow::Break(Refusal::SystemFunction(f.name.to_string()));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Refusal> {
        // Table functions such as TABLE(SYSTEM$...) appear as relations too.
        if self.guard.is_read_only() && is_system_function(relation) {
            return ControlFlow::Break(Refusal::SystemFunction(relation.to_string()));
        }
        ControlFlow::Continue(())
    }
}

fn is_system_function(name: &ObjectName) -> bool {
    name.0.last().is_some_and(|part| {
        part.to_string()
            .trim_matches('"')
            .to_ascii_uppercase()
            .starts_with("SYSTEM$")
    })
}

/// Quotes an identifier for Snowflake (and SQLite): wrapped in double
/// quotes, inner double quotes doubled. Never splice an identifier otherwise.
#[cfg_attr(not(any(feature = "sqlite", feature = "snowflake")), allow(dead_code))]
pub(crate) fn quote_ident(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    out.push('"');
    for c in ident.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
