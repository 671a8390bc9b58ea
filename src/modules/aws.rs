//! `aws::sign`: AWS Signature Version 4 for a request a script is about to send.
//!
//! ```rhai
//! let headers = aws::sign(#{
//!     method: "GET", url: "https://bucket.s3.eu-west-1.amazonaws.com/key", headers: #{}, body: "",
//!     region: "eu-west-1", service: "s3", access_key: ak, secret_key: sk,   // session_token optional
//! });
//! http::get(url, #{ headers: headers })
//! ```
//! Returns the headers to add (`authorization`, `x-amz-date`, and `x-amz-content-sha256` for S3,
//! `x-amz-security-token` with a session token).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use rhai::{Dynamic, EvalAltResult, Map, Module};

use super::codec::bytes_of;
use super::native::{arg_error, func};
use super::values::text_pairs;

fn text(options: &Map, key: &str) -> Result<String, Box<EvalAltResult>> {
    options.get(key).map(|v| v.to_string()).ok_or_else(|| arg_error(&format!("aws::sign needs {key}")))
}

pub fn sign_request(options: &Map) -> Result<Map, Box<EvalAltResult>> {
    let method = text(options, "method")?.to_ascii_uppercase();
    let url = text(options, "url")?;
    let service = text(options, "service")?;
    let region = text(options, "region")?;
    let session_token = options.get("session_token").map(|v| v.to_string());
    let body = match options.get("body") {
        Some(body) if !body.is_unit() => bytes_of(body, "body")?,
        _ => Vec::new(),
    };
    let headers: Vec<(String, String)> = match options.get("headers") {
        None => Vec::new(),
        Some(h) => text_pairs(&*h.read_lock::<Map>().ok_or_else(|| arg_error("headers must be a map"))?)?
            .into_iter()
            .map(|(name, value)| (name.to_lowercase(), value))
            .collect(),
    };

    let identity: Identity = Credentials::new(
        text(options, "access_key")?,
        text(options, "secret_key")?,
        session_token,
        None,
        "switchboard",
    )
    .into();
    let mut settings = SigningSettings::default();
    if service == "s3" {
        // S3 signs the payload hash in a header and does not normalise or double-encode paths.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name(&service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| arg_error(&format!("aws::sign: {e}")))?
        .into();
    let signable = SignableRequest::new(
        &method,
        url.as_str(),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )
    .map_err(|e| arg_error(&format!("aws::sign: {e}")))?;
    let (instructions, _signature) =
        sign(signable, &params).map_err(|e| arg_error(&format!("aws::sign: {e}")))?.into_parts();
    let mut added = Map::new();
    for (name, value) in instructions.headers() {
        added.insert(name.into(), Dynamic::from(value.to_owned()));
    }
    Ok(added)
}

pub fn module() -> Module {
    let mut module = Module::new();
    func("sign").set_into_module(&mut module, |options: Map| sign_request(&options));
    module
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_adds_the_authorization_and_date_headers() {
        let mut options = Map::new();
        for (k, v) in [
            ("method", "GET"),
            ("url", "https://examplebucket.s3.amazonaws.com/test.txt"),
            ("region", "us-east-1"),
            ("service", "s3"),
            ("access_key", "AKIAIOSFODNN7EXAMPLE"),
            ("secret_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ] {
            options.insert(k.into(), v.into());
        }
        let headers = sign_request(&options).unwrap();
        let authorization = headers["authorization"].to_string();
        assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"), "{authorization}");
        assert!(authorization.contains("/us-east-1/s3/aws4_request"));
        assert!(authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date"));
        assert!(headers.contains_key("x-amz-date"));
        assert_eq!(
            headers["x-amz-content-sha256"].to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
