//! The Snowflake tools, registered through the public tool API like any host's.

pub mod sql_guard;
