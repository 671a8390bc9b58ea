//! `jwt::sign_rs256`: signed JSON Web Tokens, as Google service accounts and similar flows need.
//!
//! ```rhai
//! let token = jwt::sign_rs256(#{ iss: email, scope: scope, aud: url, iat: now, exp: now + 3600 }, private_key_pem);
//! let token = jwt::sign_rs256(claims, private_key_pem, #{ kid: key_id });
//! let fingerprint = jwt::public_key_fingerprint(private_key_pem);   // "SHA256:…" (Snowflake's key-pair tokens)
//! ```

pub(crate) use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rhai::{EvalAltResult, Map, Module};

use super::native::{arg_error, func};
use super::values::to_json;

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

/// `SHA256:` and the base64 SHA-256 of the DER public key of an RSA private key (PKCS#8 or PKCS#1 PEM): how
/// Snowflake's key-pair tokens name the key they are signed with.
fn public_key_fingerprint(pem: &str) -> Result<String, Box<EvalAltResult>> {
    use base64::Engine as _;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use sha2::Digest;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem.trim())
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem.trim()))
        .map_err(|_| arg_error("the private key is not an unencrypted RSA key in PEM form"))?;
    let der = rsa::RsaPublicKey::from(&key)
        .to_public_key_der()
        .map_err(|e| arg_error(&format!("cannot encode the public key: {e}")))?;
    Ok(format!("SHA256:{}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(der.as_bytes()))))
}

pub fn module() -> Module {
    let mut module = Module::new();
    func("public_key_fingerprint").set_into_module(&mut module, |pem: &str| public_key_fingerprint(pem));
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
