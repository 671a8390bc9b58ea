//! `securitySchemes` and `security` → `META.auth`, its secrets, and `META.oauth2`.
//!
//! A document may offer several ways in. The schemes are tried in the order the document prefers them
//! (its top-level `security` requirements, then every declared scheme) and the first one the runtime
//! can use wins; the others are named in the import's notes. Secrets are named after the server
//! (`PETS_API_KEY`, `PETS_TOKEN`, `PETS_CLIENT_ID`…), so two imported servers never share one.

use serde_json::{Map, Value, json};

use super::document::Document;
use crate::error::Error;

/// How an imported server authenticates.
#[derive(Debug, Default)]
pub struct Auth {
    /// `META.auth` (`""`: none).
    pub auth: String,
    pub secrets: Vec<String>,
    pub oauth2: Option<Value>,
    /// Entries for `META.api` (`username`, `password`, `headers`).
    pub api: Map<String, Value>,
    /// A header or query parameter the credential travels in: operations do not ask for it.
    pub carrier: Option<(String, String)>,
    /// The notes on schemes the runtime cannot use (not those passed over for another one): the API
    /// may need credentials the server does not send.
    pub unusable: Vec<String>,
}

/// Why a usable scheme was passed over.
const ANOTHER_CHOSEN: &str = "another scheme was chosen";

/// The server's auth, and notes on what was passed over.
pub fn auth(document: &Document, prefix: &str, base_url: &str, notes: &mut Vec<String>) -> Result<Auth, Error> {
    let root = document.root();
    let schemes = match root.pointer("/components/securitySchemes") {
        Some(Value::Object(schemes)) => schemes,
        _ => return Ok(Auth::default()),
    };
    let mut candidates: Vec<(&str, Vec<String>)> = Vec::new();
    let requirements = root.get("security").and_then(Value::as_array).into_iter().flatten();
    for requirement in requirements.filter_map(Value::as_object) {
        for (name, scopes) in requirement {
            let scopes = scopes.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned);
            candidates.push((name, scopes.collect()));
        }
    }
    candidates.extend(schemes.keys().map(|name| (name.as_str(), Vec::new())));
    let mut passed_over = Vec::new();
    let mut chosen = None;
    for (name, scopes) in candidates {
        if passed_over.iter().any(|(n, _): &(&str, String)| *n == name)
            || chosen.as_ref().is_some_and(|(n, _)| *n == name)
        {
            continue;
        }
        let Some(scheme) = schemes.get(name) else { continue };
        let scheme = document.resolve(scheme)?.0;
        match (chosen.is_some(), one(scheme, prefix, base_url, &scopes)) {
            (false, Ok(auth)) => chosen = Some((name, auth)),
            (true, Ok(_)) => passed_over.push((name, ANOTHER_CHOSEN.to_owned())),
            (_, Err(why)) => passed_over.push((name, why)),
        }
    }
    let mut unusable = Vec::new();
    for (name, why) in passed_over {
        let note = format!("security scheme '{name}' not used: {why}");
        if why != ANOTHER_CHOSEN {
            unusable.push(note.clone());
        }
        notes.push(note);
    }
    let mut auth = chosen
        .map(|(name, auth)| {
            notes.push(format!("auth from the security scheme '{name}'"));
            auth
        })
        .unwrap_or_default();
    auth.unusable = unusable;
    Ok(auth)
}

/// One scheme as the runtime's auth, or why it cannot be.
fn one(scheme: &Value, prefix: &str, base_url: &str, scopes: &[String]) -> Result<Auth, String> {
    let text = |key: &str| scheme.get(key).and_then(Value::as_str).unwrap_or_default();
    let secret = |suffix: &str| format!("{prefix}_{suffix}");
    match text("type") {
        "http" => match text("scheme").to_ascii_lowercase().as_str() {
            "bearer" => Ok(Auth { auth: "bearer".into(), secrets: vec![secret("TOKEN")], ..Auth::default() }),
            "basic" => {
                let (user, password) = (secret("USERNAME"), secret("PASSWORD"));
                let mut api = Map::new();
                api.insert("username".into(), json!(format!("{{{user}}}")));
                api.insert("password".into(), json!(format!("{{{password}}}")));
                Ok(Auth { auth: "basic".into(), secrets: vec![user, password], api, ..Auth::default() })
            }
            other => Err(format!("HTTP '{other}' authentication is not supported (bearer and basic are)")),
        },
        "apiKey" => api_key(text("in"), text("name"), secret("API_KEY")),
        "oauth2" => oauth2(scheme.get("flows"), prefix, base_url, scopes),
        "openIdConnect" => Err("OpenID Connect discovery is not supported".into()),
        other => Err(format!("the scheme type '{other}' is not supported")),
    }
}

fn api_key(place: &str, name: &str, secret: String) -> Result<Auth, String> {
    if name.is_empty() || name.contains(['\r', '\n', ':']) {
        return Err(format!("the API key's name '{name}' is not usable"));
    }
    let auth = match place {
        "header" => format!("header:{name}"),
        "query" => format!("query:{name}"),
        "cookie" => {
            let mut headers = Map::new();
            headers.insert("Cookie".into(), json!(format!("{name}={{{secret}}}")));
            let mut api = Map::new();
            api.insert("headers".into(), Value::Object(headers));
            return Ok(Auth {
                auth: "none".into(),
                secrets: vec![secret],
                api,
                carrier: Some(("cookie".into(), name.into())),
                ..Auth::default()
            });
        }
        other => return Err(format!("an API key in '{other}' is not supported")),
    };
    Ok(Auth { auth, secrets: vec![secret], carrier: Some((place.to_owned(), name.to_owned())), ..Auth::default() })
}

/// OAuth2: client credentials, else the authorization code flow (with PKCE, as the runtime always uses).
fn oauth2(flows: Option<&Value>, prefix: &str, base_url: &str, scopes: &[String]) -> Result<Auth, String> {
    let flows = flows.and_then(Value::as_object).ok_or("OAuth2 without flows")?;
    let (grant, flow) = [("client_credentials", "clientCredentials"), ("authorization_code", "authorizationCode")]
        .into_iter()
        .find_map(|(grant, key)| flows.get(key).map(|flow| (grant, flow)))
        .ok_or_else(|| {
            let names: Vec<&str> = flows.keys().map(String::as_str).collect();
            format!(
                "the OAuth2 flows {} are not supported (clientCredentials and authorizationCode are)",
                names.join(", ")
            )
        })?;
    let url = |key: &str| -> Result<String, String> {
        let text = flow.get(key).and_then(Value::as_str).unwrap_or_default();
        absolute(text, base_url).ok_or_else(|| format!("the OAuth2 {key} '{text}' is not an http(s) URL"))
    };
    let scopes: Vec<String> = match scopes.is_empty() {
        false => scopes.to_vec(),
        true => flow.get("scopes").and_then(Value::as_object).map(|s| s.keys().cloned().collect()).unwrap_or_default(),
    };
    let (id, secret) = (format!("{prefix}_CLIENT_ID"), format!("{prefix}_CLIENT_SECRET"));
    let mut spec = json!({
        "grant": grant, "token_url": url("tokenUrl")?, "scopes": scopes,
        "client_id": format!("{{{id}}}"), "client_secret": format!("{{{secret}}}"),
    });
    if grant == "authorization_code" {
        spec["authorize_url"] = json!(url("authorizationUrl")?);
    }
    Ok(Auth { auth: "oauth2".into(), secrets: vec![id, secret], oauth2: Some(spec), ..Auth::default() })
}

/// An http(s) URL as it is, or a relative one resolved against the base URL.
fn absolute(text: &str, base_url: &str) -> Option<String> {
    let parsed = url::Url::parse(text).or_else(|_| url::Url::parse(base_url).and_then(|base| base.join(text))).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_of(document: Value) -> (Auth, Vec<String>) {
        let document = Document::read(document.to_string().as_bytes(), None).unwrap();
        let mut notes = Vec::new();
        (auth(&document, "PETS", "https://api.pets.example/v1", &mut notes).unwrap(), notes)
    }

    #[test]
    fn the_preferred_supported_scheme_wins_and_the_others_are_noted() {
        let (auth, notes) = auth_of(json!({ "openapi": "3.0.0",
            "security": [{ "oidc": [] }, { "key": [] }],
            "components": { "securitySchemes": {
                "basic": { "type": "http", "scheme": "basic" },
                "key": { "type": "apiKey", "in": "query", "name": "api_key" },
                "oidc": { "type": "openIdConnect", "openIdConnectUrl": "https://x/.well-known" },
            } } }));
        assert_eq!((auth.auth.as_str(), auth.secrets), ("query:api_key", vec!["PETS_API_KEY".to_owned()]));
        assert_eq!(auth.carrier, Some(("query".into(), "api_key".into())));
        assert!(notes.iter().any(|n| n.contains("'oidc' not used: OpenID Connect")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("'basic' not used: another scheme")), "{notes:?}");
        // Only the scheme the runtime cannot use is a warning; one passed over for another is not.
        assert_eq!(auth.unusable.len(), 1, "{:?}", auth.unusable);
        assert!(auth.unusable[0].contains("'oidc' not used: OpenID Connect"), "{:?}", auth.unusable);
    }

    #[test]
    fn oauth2_flows_become_the_runtimes_grants() {
        let (auth, _) = auth_of(json!({ "openapi": "3.0.0",
            "security": [{ "oauth": ["pets:read"] }],
            "components": { "securitySchemes": { "oauth": { "type": "oauth2", "flows": {
                "implicit": { "authorizationUrl": "https://auth.pets.example/authorize", "scopes": {} },
                "authorizationCode": { "authorizationUrl": "https://auth.pets.example/authorize",
                                       "tokenUrl": "/oauth/token", "scopes": { "pets:read": "", "pets:write": "" } },
            } } } } }));
        assert_eq!(auth.auth, "oauth2");
        assert_eq!(auth.secrets, ["PETS_CLIENT_ID", "PETS_CLIENT_SECRET"]);
        assert_eq!(
            auth.oauth2.unwrap(),
            json!({ "grant": "authorization_code", "token_url": "https://api.pets.example/oauth/token",
                    "authorize_url": "https://auth.pets.example/authorize", "scopes": ["pets:read"],
                    "client_id": "{PETS_CLIENT_ID}", "client_secret": "{PETS_CLIENT_SECRET}" })
        );
    }

    #[test]
    fn basic_and_cookie_keys_fill_templates_from_the_servers_secrets() {
        let (auth, _) = auth_of(json!({ "openapi": "3.0.0", "components": { "securitySchemes": {
            "basic": { "type": "http", "scheme": "Basic" } } } }));
        assert_eq!(auth.auth, "basic");
        assert_eq!(auth.api["username"], "{PETS_USERNAME}");
        let (auth, _) = auth_of(json!({ "openapi": "3.0.0", "components": { "securitySchemes": {
            "session": { "type": "apiKey", "in": "cookie", "name": "sid" } } } }));
        assert_eq!(auth.api["headers"]["Cookie"], "sid={PETS_API_KEY}");
        let (none, notes) = auth_of(json!({ "openapi": "3.0.0" }));
        assert_eq!((none.auth.as_str(), notes.len()), ("", 0));
    }
}
