//! The OAuth settings: the resource server's issuer, resource URL, scopes
//! and token rules, checked like the others before anything starts.

use std::sync::Arc;

use snowflake_mcp::guard::oauth::OAuth;

use super::table::Spec;
use super::*;

/// The OAuth settings' rows of the table.
pub(super) fn oauth_specs() -> Vec<Spec> {
    let s = table::spec;
    vec![
        s(
            "oauth_issuer",
            "--oauth-issuer",
            "MCP_OAUTH_ISSUER",
            "URL",
            "off".into(),
            "require OAuth 2.1 access tokens from this authorization server (its issuer identifier; https, or http on loopback) on /mcp and /ws",
        ),
        s(
            "oauth_resource",
            "--oauth-resource",
            "MCP_OAUTH_RESOURCE",
            "URL",
            "http://HOST:PORT/mcp".into(),
            "this server's canonical /mcp URL as clients reach it: the tokens' audience and the metadata's resource",
        ),
        s(
            "oauth_scopes",
            "--oauth-scopes",
            "MCP_OAUTH_SCOPES",
            "SCOPES",
            "none".into(),
            "scopes every token must carry, space- or comma-separated (403 insufficient_scope without them)",
        ),
        s(
            "oauth_write_scope",
            "--oauth-write-scope",
            "MCP_OAUTH_WRITE_SCOPE",
            "SCOPE",
            "none (every token may run what --allow permits)".into(),
            "the scope that lets a token run what --allow permits; without it, read-only statements only",
        ),
        s(
            "oauth_kind_scopes",
            "--oauth-kind-scopes",
            "MCP_OAUTH_KIND_SCOPES",
            "KIND=SCOPE,...",
            "none".into(),
            "statement kinds a scope grants without the write scope (INSERT=mcp:insert, say), within what --allow permits",
        ),
        s(
            "oauth_tool_scopes",
            "--oauth-tool-scopes",
            "MCP_OAUTH_TOOL_SCOPES",
            "TOOL=SCOPE,...",
            "none".into(),
            "tools only tokens with a scope of their own may call (403 insufficient_scope naming it otherwise, so clients can step up)",
        ),
        s(
            "oauth_jwks_uri",
            "--oauth-jwks-uri",
            "MCP_OAUTH_JWKS_URI",
            "URL",
            "the issuer's metadata's jwks_uri".into(),
            "where the issuer's signing keys are",
        ),
        s(
            "oauth_algorithms",
            "--oauth-algorithms",
            "MCP_OAUTH_ALGORITHMS",
            "ALGS",
            "RS256,ES256,EdDSA".into(),
            "token signature algorithms accepted (of RS256/384/512, PS256/384/512, ES256/384, EdDSA)",
        ),
        s(
            "oauth_leeway",
            "--oauth-leeway",
            "MCP_OAUTH_LEEWAY",
            "DURATION",
            "30s".into(),
            "clock skew allowed on the tokens' exp and nbf",
        ),
        s(
            "oauth_refetch_interval",
            "--oauth-refetch-interval",
            "MCP_OAUTH_REFETCH_INTERVAL",
            "DURATION",
            "30s".into(),
            "least time between two fetches of the keys (a token naming an unknown key fetches them)",
        ),
        Spec {
            boolean: true,
            ..s(
                "oauth_accept_jwt_typ",
                "--oauth-accept-jwt-typ",
                "MCP_OAUTH_ACCEPT_JWT_TYP",
                "BOOL",
                "false".into(),
                "take access tokens typed JWT, not only at+jwt (for providers that type them so)",
            )
        },
        s(
            "oauth_introspection_client_id",
            "--oauth-introspection-client-id",
            "MCP_OAUTH_INTROSPECTION_CLIENT_ID",
            "ID",
            "off (opaque tokens refused)".into(),
            "check opaque tokens by introspection at the issuer, as this client (its secret in MCP_OAUTH_INTROSPECTION_SECRET)",
        ),
        Spec {
            key: "oauth_introspection_secret",
            flag: None,
            env: "MCP_OAUTH_INTROSPECTION_SECRET",
            hint: "SECRET",
            default: "none".into(),
            help: "the introspection client's secret (no flag: a command line is visible to every user)",
            boolean: false,
        },
    ]
}

impl Given {
    /// The resource server, when `oauth_issuer` is set.
    pub(super) fn oauth(&self, host: IpAddr, port: u16) -> Result<Option<Arc<OAuth>>, String> {
        let Some((issuer, origin)) = self.values.get("oauth_issuer") else {
            for (key, (_, origin)) in &self.values {
                if key.starts_with("oauth_") {
                    return Err(format!("{origin}: needs oauth_issuer"));
                }
            }
            return Ok(None);
        };
        let host = match host {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let resource = self.get("oauth_resource", format!("http://{host}:{port}/mcp"), |v| {
            Ok(v.to_owned())
        })?;
        let mut oauth = OAuth::new(issuer.trim(), &resource).map_err(|e| {
            let which = if self.values.contains_key("oauth_resource") {
                "oauth_resource or oauth_issuer"
            } else {
                "oauth_issuer (and the default oauth_resource)"
            };
            format!("{origin}: {which}: {e}")
        })?;
        let scopes = self.get("oauth_scopes", Vec::new(), |v| Ok(words(v)))?;
        oauth = oauth.required_scopes(&scopes.iter().map(String::as_str).collect::<Vec<_>>());
        if let Some(scope) = self.get("oauth_write_scope", None, |v| Ok(Some(v.to_owned())))? {
            oauth = oauth.write_scope(&scope);
        }
        for (tool, scope) in self.get("oauth_tool_scopes", Vec::new(), |v| pairs(v, "TOOL"))? {
            oauth = oauth.tool_scope(&tool, &scope);
        }
        for (kind, scope) in self.get("oauth_kind_scopes", Vec::new(), |v| pairs(v, "KIND"))? {
            let Some(kind) = snowflake_mcp::tools::sql_guard::StatementKind::parse(&kind) else {
                return Err(format!(
                    "oauth_kind_scopes: {kind:?} is not a statement kind"
                ));
            };
            oauth = oauth.kind_scope(kind, &scope);
        }
        if let Some(url) = self.get("oauth_jwks_uri", None, |v| Ok(Some(v.to_owned())))? {
            oauth = oauth
                .jwks_uri(&url)
                .map_err(|e| format!("oauth_jwks_uri: {e}"))?;
        }
        let algorithms = self.get("oauth_algorithms", None, |v| {
            words(v)
                .iter()
                .map(|a| {
                    a.parse::<snowflake_mcp::guard::oauth::Algorithm>()
                        .map_err(|_| format!("{a:?} is not a signature algorithm"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        })?;
        if let Some(algorithms) = algorithms {
            oauth = oauth
                .algorithms(&algorithms)
                .map_err(|e| format!("oauth_algorithms: {e}"))?;
        }
        oauth = oauth
            .leeway(self.get(
                "oauth_leeway",
                snowflake_mcp::guard::oauth::DEFAULT_LEEWAY,
                parse_duration,
            )?)
            .refetch_interval(self.duration(
                "oauth_refetch_interval",
                snowflake_mcp::guard::oauth::DEFAULT_REFETCH_INTERVAL,
            )?)
            .require_at_jwt_type(!self.get("oauth_accept_jwt_typ", false, parse_bool)?);
        let client_id = self.get("oauth_introspection_client_id", None, |v| {
            Ok(Some(v.to_owned()))
        })?;
        let secret = self
            .values
            .get("oauth_introspection_secret")
            .map(|(v, _)| v.as_str());
        match (client_id, secret) {
            (Some(id), Some(secret)) => {
                oauth = oauth
                    .introspection(&id, secret, None)
                    .map_err(|e| format!("oauth_introspection_client_id: {e}"))?;
            }
            (None, None) => {}
            _ => {
                return Err(
                    "oauth_introspection_client_id and MCP_OAUTH_INTROSPECTION_SECRET go together"
                        .into(),
                );
            }
        }
        Ok(Some(Arc::new(oauth)))
    }
}

/// `NAME=SCOPE,...` pairs (`what` names the left side in messages).
fn pairs(v: &str, what: &str) -> Result<Vec<(String, String)>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| match e.split_once('=') {
            Some((name, scope)) if !name.trim().is_empty() && !scope.trim().is_empty() => {
                Ok((name.trim().to_owned(), scope.trim().to_owned()))
            }
            _ => Err(format!("{e:?} is not {what}=SCOPE")),
        })
        .collect()
}

/// Space- or comma-separated words.
fn words(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}
