//! `jwt::sign_rs256`: signed JSON Web Tokens, as Google service accounts and similar flows need.
//!
//! ```rhai
//! let token = jwt::sign_rs256(#{ iss: email, scope: scope, aud: url, iat: now, exp: now + 3600 }, private_key_pem);
//! let token = jwt::sign_rs256(claims, private_key_pem, #{ kid: key_id });
//! ```

pub(crate) use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rhai::{EvalAltResult, Map, Module};

use super::{arg_error, func, to_json};

/// Signs `claims` with an RSA private key in PEM form (RS256). Shared with the OAuth service-account grant.
pub(crate) fn rs256(claims: &serde_json::Value, pem: &str, header: &Header) -> Result<String, String> {
    let key = EncodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| "the private key is not an RSA key in PEM form".to_string())?;
    jsonwebtoken::encode(header, claims, &key).map_err(|e| format!("cannot sign the token: {e}"))
}

fn sign(claims: &Map, pem: &str, header: &Map) -> Result<String, Box<EvalAltResult>> {
    let mut jwt_header = Header::new(Algorithm::RS256);
    for (name, value) in header {
        match name.as_str() {
            "kid" => jwt_header.kid = Some(value.to_string()),
            "typ" => jwt_header.typ = Some(value.to_string()),
            other => return Err(arg_error(&format!("unsupported JWT header field '{other}' (kid, typ)"))),
        }
    }
    let claims = to_json(&claims.clone().into())?;
    rs256(&claims, pem, &jwt_header).map_err(|e| arg_error(&e))
}

pub fn module() -> Module {
    let mut module = Module::new();
    func("sign_rs256").set_into_module(&mut module, |claims: Map, pem: &str| sign(&claims, pem, &Map::new()));
    func("sign_rs256").set_into_module(&mut module, |claims: Map, pem: &str, header: Map| sign(&claims, pem, &header));
    module
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const PRIVATE: &str = include_str!("../../tests/fixtures/rsa-private.pem");
    const PUBLIC: &str = include_str!("../../tests/fixtures/rsa-public.pem");

    #[test]
    fn a_signed_token_verifies_with_the_public_key() {
        let mut claims = Map::new();
        claims.insert("iss".into(), "svc@example.iam".into());
        claims.insert("exp".into(), (chrono::Utc::now().timestamp() + 600).into());
        let mut header = Map::new();
        header.insert("kid".into(), "key-1".into());
        let token = sign(&claims, PRIVATE, &header).unwrap();
        let key = DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap();
        let decoded =
            jsonwebtoken::decode::<serde_json::Value>(&token, &key, &Validation::new(Algorithm::RS256)).unwrap();
        assert_eq!(decoded.claims["iss"], "svc@example.iam");
        assert_eq!(decoded.header.kid.as_deref(), Some("key-1"));
        assert!(sign(&claims, "not a key", &Map::new()).is_err());
    }
}
