//! `META.oauth2`: how a server's tokens are obtained, read once when its script loads so that a
//! malformed declaration is refused with the script (422) instead of failing at the first call.
//! Obtaining and renewing the tokens is [`oauth`](crate::oauth)'s.
//!
//! Every text field is a template whose `{NAME}` placeholders are filled from the script's declared
//! secrets and variables when it is used, exactly as `api::call` fills its own templates.

use serde_json::{Map, Value};

use super::invalid::Invalid;

/// How an access token is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The client's own credentials (RFC 6749 §4.4); with a `grant_type` in `params`, that grant
    /// instead (Zoom's `account_credentials`).
    ClientCredentials,
    /// A user connects once through the browser (PKCE S256); the refresh token keeps it going.
    AuthorizationCode,
    /// A refresh token the user pasted in as a secret.
    RefreshToken,
    /// A signed assertion (RFC 7523), as Google service accounts use.
    JwtBearer,
}

impl Grant {
    fn parse(text: &str) -> Result<Grant, Invalid> {
        Ok(match text {
            "client_credentials" => Grant::ClientCredentials,
            "authorization_code" => Grant::AuthorizationCode,
            "refresh_token" => Grant::RefreshToken,
            "jwt_bearer" => Grant::JwtBearer,
            other => {
                return Err(format!(
                    "META.oauth2.grant '{other}' is not one of client_credentials, authorization_code, refresh_token, jwt_bearer"
                )
                .into());
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::AuthorizationCode => "authorization_code",
            Grant::RefreshToken => "refresh_token",
            Grant::JwtBearer => "jwt_bearer",
        }
    }

    /// Whether tokens come with a refresh token worth keeping across restarts.
    pub fn keeps_refresh_token(self) -> bool {
        matches!(self, Grant::AuthorizationCode | Grant::RefreshToken)
    }
}

/// Where the client's credentials travel in a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP basic authentication (RFC 6749's recommendation, the default).
    Basic,
    /// `client_id` and `client_secret` form fields.
    Body,
}

/// A server's `META.oauth2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub grant: Grant,
    pub token_url: String,
    pub authorize_url: String,
    /// Where a token is revoked when the server is disconnected (RFC 7009), if the provider has one.
    pub revoke_url: String,
    pub scopes: Vec<String>,
    pub client_id: String,
    pub client_secret: String,
    pub client_auth: ClientAuth,
    /// A template naming the secret that holds a Google-style service-account JSON.
    pub service_account: String,
    /// The user a service account acts for (domain-wide delegation).
    pub subject: String,
    /// The pasted refresh token of the `refresh_token` grant.
    pub refresh_token: String,
    /// A declared secret holding a plain access token: when it is set, it is sent as is.
    pub access_token: String,
    /// Extra token-request fields.
    pub params: Vec<(String, String)>,
    /// Extra authorization-request fields (`access_type=offline`, `token_access_type=offline`).
    pub authorize_params: Vec<(String, String)>,
    /// Another `api::call` auth scheme and its credential template (`query:key`, `{GOOGLE_API_KEY}`),
    /// used when neither the plain access token nor the grant's own credential is set.
    pub fallback: Option<(String, String)>,
}

const FIELDS: [&str; 15] = [
    "grant",
    "token_url",
    "authorize_url",
    "revoke_url",
    "scopes",
    "client_id",
    "client_secret",
    "client_auth",
    "service_account",
    "subject",
    "refresh_token",
    "access_token",
    "params",
    "authorize_params",
    "fallback",
];

impl Spec {
    /// Reads `META.oauth2`, or says what is wrong with it.
    pub fn from_json(value: &Value) -> Result<Spec, Invalid> {
        let map = value.as_object().ok_or("META.oauth2 must be a map")?;
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!("META.oauth2.{unknown} is not a field ({})", FIELDS.join(", ")).into());
        }
        let text = |key: &str| match map.get(key) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Invalid::from(format!("META.oauth2.{key} must be a string"))),
        };
        let grant = Grant::parse(map.get("grant").and_then(Value::as_str).ok_or("META.oauth2.grant is required")?)?;
        let client_auth = match text("client_auth")?.as_str() {
            "" | "basic" => ClientAuth::Basic,
            "body" => ClientAuth::Body,
            other => return Err(format!("META.oauth2.client_auth '{other}' is not basic or body").into()),
        };
        let scopes = match map.get("scopes") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|s| s.as_str().map(str::to_owned).ok_or("META.oauth2.scopes holds strings"))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("META.oauth2.scopes must be an array of strings".into()),
        };
        let spec = Spec {
            grant,
            token_url: text("token_url")?,
            authorize_url: text("authorize_url")?,
            revoke_url: text("revoke_url")?,
            scopes,
            client_id: text("client_id")?,
            client_secret: text("client_secret")?,
            client_auth,
            service_account: text("service_account")?,
            subject: text("subject")?,
            refresh_token: text("refresh_token")?,
            access_token: text("access_token")?,
            params: pairs(map, "params")?,
            authorize_params: pairs(map, "authorize_params")?,
            fallback: fallback(map)?,
        };
        spec.check()?;
        Ok(spec)
    }

    /// What each grant needs.
    fn check(&self) -> Result<(), Invalid> {
        let need = |value: &str, field: &str| match value.is_empty() {
            true => Err(format!("META.oauth2.{field} is required for the {} grant", self.grant.name()).into()),
            false => Ok(()),
        };
        match self.grant {
            Grant::JwtBearer => need(&self.service_account, "service_account"),
            Grant::AuthorizationCode => {
                need(&self.client_id, "client_id")?;
                need(&self.token_url, "token_url")?;
                need(&self.authorize_url, "authorize_url")
            }
            Grant::RefreshToken => {
                need(&self.client_id, "client_id")?;
                need(&self.token_url, "token_url")?;
                need(&self.refresh_token, "refresh_token")
            }
            Grant::ClientCredentials => {
                need(&self.client_id, "client_id")?;
                need(&self.token_url, "token_url")
            }
        }
    }

    /// The `grant_type` a provider asks for instead of the standard one (`params.grant_type`).
    pub fn custom_grant_type(&self) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == "grant_type").map(|(_, v)| v.as_str())
    }
}

/// `fallback: #{ auth: "query:key", token: "{GOOGLE_API_KEY}" }`: any scheme but `oauth2` itself.
fn fallback(map: &Map<String, Value>) -> Result<Option<(String, String)>, Invalid> {
    if map.get("fallback").is_none() {
        return Ok(None);
    }
    let fields = pairs(map, "fallback")?;
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match (field("auth"), field("token"), fields.len()) {
        (Some(auth), Some(token), 2) if auth != "oauth2" && !token.is_empty() => Ok(Some((auth, token))),
        _ => {
            Err("META.oauth2.fallback is #{ auth, token }: an api auth scheme other than oauth2 and its credential"
                .into())
        }
    }
}

fn pairs(map: &Map<String, Value>, key: &str) -> Result<Vec<(String, String)>, Invalid> {
    match map.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Object(fields)) => fields
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(format!("META.oauth2.{key}.{k} must be a string").into()),
            })
            .collect(),
        Some(_) => Err(format!("META.oauth2.{key} must be a map of strings").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_grant_names_what_it_lacks() {
        let spec = Spec::from_json(&json!({
            "grant": "client_credentials", "token_url": "https://a/token", "client_id": "{ID}",
            "params": { "grant_type": "account_credentials", "account_id": "{ACCOUNT}" },
        }))
        .unwrap();
        assert_eq!(spec.custom_grant_type(), Some("account_credentials"));
        assert_eq!(spec.client_auth, ClientAuth::Basic);
        assert_eq!(
            Spec::from_json(&json!({"grant": "authorization_code", "token_url": "t", "client_id": "c"})).unwrap_err(),
            "META.oauth2.authorize_url is required for the authorization_code grant"
        );
        assert_eq!(
            Spec::from_json(&json!({"grant": "jwt_bearer"})).unwrap_err(),
            "META.oauth2.service_account is required for the jwt_bearer grant"
        );
        assert!(Spec::from_json(&json!({"grant": "password"})).unwrap_err().contains("not one of"));
        assert!(Spec::from_json(&json!({"grant": "jwt_bearer", "tokn_url": "x"})).unwrap_err().contains("tokn_url"));
        assert!(
            Spec::from_json(&json!({"grant": "jwt_bearer", "service_account": "{S}", "client_auth": "post"}))
                .unwrap_err()
                .contains("basic or body")
        );
        let fallback = json!({"grant": "jwt_bearer", "service_account": "{S}",
            "fallback": {"auth": "query:key", "token": "{K}"}});
        assert_eq!(Spec::from_json(&fallback).unwrap().fallback, Some(("query:key".into(), "{K}".into())));
        let circular = json!({"grant": "jwt_bearer", "service_account": "{S}",
            "fallback": {"auth": "oauth2", "token": "{K}"}});
        assert!(Spec::from_json(&circular).unwrap_err().contains("other than oauth2"));
    }
}
