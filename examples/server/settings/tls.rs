//! The TLS settings: certificate and key files, how often they are checked
//! for a renewal. Built with the `tls` feature; without it, setting them
//! stops start-up with a message saying so.

use super::table::Spec;
use super::*;

/// HSTS sent when serving TLS unless `hsts_max_age` says otherwise: a year.
const TLS_HSTS_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The TLS settings' rows of the table.
pub(super) fn tls_specs() -> Vec<Spec> {
    let s = table::spec;
    vec![
        s(
            "tls_cert",
            "--tls-cert",
            "MCP_TLS_CERT",
            "FILE",
            "off (plain HTTP)".into(),
            "serve https/wss with this PEM certificate chain, leaf first (needs --tls-key; a build with the tls feature)",
        ),
        s(
            "tls_key",
            "--tls-key",
            "MCP_TLS_KEY",
            "FILE",
            "none".into(),
            "the PEM private key of --tls-cert",
        ),
        s(
            "tls_reload_interval",
            "--tls-reload-interval",
            "MCP_TLS_RELOAD_INTERVAL",
            "DURATION",
            "10s".into(),
            "how often the certificate files are checked for a renewal (SIGHUP reloads at once)",
        ),
    ]
}

/// What TLS needs at start: the loaded certificate and the watch interval.
#[cfg(feature = "tls")]
pub type TlsSettings = Option<(snowflake_mcp::tls::Tls, Duration)>;
/// Without the `tls` feature nothing can be loaded.
#[cfg(not(feature = "tls"))]
pub type TlsSettings = Option<std::convert::Infallible>;

impl Given {
    /// TLS, when `tls_cert` is set; the certificate is read now, so a bad
    /// file stops start-up.
    pub(super) fn tls(&self, config: &mut Config) -> Result<TlsSettings, String> {
        let cert = self.values.get("tls_cert");
        let key = self.values.get("tls_key");
        let (cert, key) = match (cert, key) {
            (None, None) => {
                if let Some((_, origin)) = self.values.get("tls_reload_interval") {
                    return Err(format!("{origin}: needs tls_cert and tls_key"));
                }
                return Ok(None);
            }
            (Some((cert, _)), Some((key, _))) => (cert, key),
            (Some((_, origin)), None) | (None, Some((_, origin))) => {
                return Err(format!("{origin}: tls_cert and tls_key go together"));
            }
        };
        let interval = self.duration("tls_reload_interval", Duration::from_secs(10))?;
        if !self.values.contains_key("hsts_max_age") {
            config.hsts_max_age = Some(TLS_HSTS_MAX_AGE);
        }
        load(cert, key, interval)
    }
}

#[cfg(feature = "tls")]
fn load(cert: &str, key: &str, interval: Duration) -> Result<TlsSettings, String> {
    let tls = snowflake_mcp::tls::Tls::from_pem_files(cert, key).map_err(|e| e.to_string())?;
    Ok(Some((tls, interval)))
}

#[cfg(not(feature = "tls"))]
fn load(_cert: &str, _key: &str, _interval: Duration) -> Result<TlsSettings, String> {
    Err("tls_cert: this server was built without TLS (build it with --features tls)".into())
}
