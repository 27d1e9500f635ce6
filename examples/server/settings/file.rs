//! The settings file, read with serde and toml.

use super::*;

/// A value of the settings file: text, a number, a boolean or a list of
/// them, read as the text an environment variable would hold.
#[derive(serde::Deserialize)]
#[serde(untagged)]
pub(super) enum FileValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    List(Vec<FileValue>),
}

impl FileValue {
    pub(super) fn text(&self) -> String {
        match self {
            FileValue::Text(s) => s.clone(),
            FileValue::Integer(i) => i.to_string(),
            FileValue::Float(f) => f.to_string(),
            FileValue::Boolean(b) => b.to_string(),
            FileValue::List(items) => items
                .iter()
                .map(FileValue::text)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// The settings file: settings by key, and the `[snowflake]` table.
#[derive(serde::Deserialize)]
pub(super) struct File {
    #[serde(default)]
    pub(super) snowflake: BTreeMap<String, String>,
    #[serde(flatten)]
    pub(super) settings: BTreeMap<String, FileValue>,
}

impl File {
    /// Reads and checks the file at `path` (named by `origin`).
    pub(super) fn read(path: &std::path::Path, origin: &Origin) -> Result<File, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{origin}: cannot read {}: {e}", path.display()))?;
        text.parse::<toml::Table>()
            .map_err(|e| format!("{}: not valid TOML: {e}", path.display()))?;
        let file: File = toml::from_str(&text).map_err(|e| {
            format!(
                "{}: settings are text, numbers, booleans or lists, and [snowflake] holds text: {e}",
                path.display()
            )
        })?;
        for key in file.snowflake.keys() {
            if !SNOWFLAKE_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "snowflake.{key} (in {}): not a Snowflake setting (one of {})",
                    path.display(),
                    SNOWFLAKE_KEYS.join(", ")
                ));
            }
        }
        Ok(file)
    }
}
