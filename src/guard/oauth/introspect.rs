//! Opaque access tokens, checked by RFC 7662 token introspection.

use std::time::Duration;

use serde::Deserialize;

use super::keys::{FetchError, checked_url, read_json};
use super::token::Caller;

/// The longest an introspection answer is trusted (a token revoked at the
/// authorization server is refused again within this time). Default: 60 s.
pub const MAX_INTROSPECTION_AGE: Duration = Duration::from_secs(60);

/// How the resource server authenticates to the introspection endpoint.
pub(crate) struct Introspection {
    client_id: String,
    /// Never printed: `Debug` is not derived.
    client_secret: String,
    /// The configured endpoint, if any (else the issuer's metadata's).
    pub endpoint: Option<String>,
}

impl Introspection {
    pub(crate) fn new(client_id: &str, client_secret: &str, endpoint: Option<&str>) -> Self {
        Introspection {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            endpoint: endpoint.map(str::to_owned),
        }
    }

    /// Asks `endpoint` about `token`; the caller if it is active, for
    /// `issuer` and `resource`.
    pub(crate) async fn check(
        &self,
        client: &reqwest::Client,
        endpoint: &str,
        token: &str,
        issuer: &str,
        resource: &str,
        now: u64,
    ) -> Result<Caller, Outcome> {
        let url = checked_url(endpoint).map_err(Outcome::Failed)?;
        let response = client
            .post(url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .header("accept", "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|_| Outcome::Failed(FetchError(format!("POST {endpoint} failed"))))?;
        let answer: Answer = read_json(response, endpoint)
            .await
            .map_err(Outcome::Failed)?;
        answer.caller(issuer, resource, now)
    }
}

/// Why introspection gave no caller.
pub(crate) enum Outcome {
    /// The token is not good (401), and why.
    Refused(&'static str),
    /// The endpoint could not be asked (503).
    Failed(FetchError),
}

/// An introspection answer (RFC 7662, 2.2).
#[derive(Deserialize)]
struct Answer {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
}

/// `aud` as one string or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Answer {
    fn caller(self, issuer: &str, resource: &str, now: u64) -> Result<Caller, Outcome> {
        if !self.active {
            return Err(Outcome::Refused("the token is not active"));
        }
        if self.iss.as_deref().is_some_and(|iss| iss != issuer) {
            return Err(Outcome::Refused("the token is from another issuer"));
        }
        let for_us = match &self.aud {
            Some(Audience::One(a)) => a == resource,
            Some(Audience::Many(list)) => list.iter().any(|a| a == resource),
            None => false,
        };
        if !for_us {
            return Err(Outcome::Refused("the token is for another audience"));
        }
        let Some(exp) = self.exp.filter(|&exp| exp > now) else {
            return Err(Outcome::Refused("the token has expired"));
        };
        let Some(subject) = self.sub.or_else(|| self.client_id.clone()) else {
            return Err(Outcome::Refused("the token names no sub or client_id"));
        };
        Ok(Caller {
            subject,
            client_id: self.client_id,
            scopes: super::token::scope_list(self.scope.as_deref().unwrap_or_default()),
            expires: exp.min(now + MAX_INTROSPECTION_AGE.as_secs()),
            limits: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: serde_json::Value) -> Result<Caller, &'static str> {
        let answer: Answer = serde_json::from_value(json).expect("answer");
        answer
            .caller("https://as", "https://rs/mcp", 1_000)
            .map_err(|e| match e {
                Outcome::Refused(why) => why,
                Outcome::Failed(_) => "failed",
            })
    }

    #[test]
    fn answers_are_held_to_issuer_audience_and_expiry() {
        let good = serde_json::json!({"active": true, "sub": "alice", "exp": 5_000,
            "aud": ["x", "https://rs/mcp"], "iss": "https://as", "scope": "b a"});
        let caller = answer(good.clone()).expect("good");
        assert_eq!(caller.subject, "alice");
        assert_eq!(caller.scopes, ["a", "b"]);
        assert_eq!(caller.expires, 1_060, "trusted for a minute at most");
        let with = |k: &str, v: serde_json::Value| {
            let mut j = good.clone();
            j[k] = v;
            j
        };
        assert_eq!(
            answer(with("active", false.into())).err(),
            Some("the token is not active")
        );
        assert!(answer(with("aud", "https://other".into())).is_err());
        assert!(answer(with("iss", "https://evil".into())).is_err());
        assert!(answer(with("exp", 999.into())).is_err());
        let mut no_aud = good.clone();
        no_aud.as_object_mut().expect("object").remove("aud");
        assert!(answer(no_aud).is_err(), "the audience must be named");
    }
}
