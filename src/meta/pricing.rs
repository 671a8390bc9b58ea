//! `META.pricing`: what the provider behind a server charges, so that each call's cost can be recorded
//! and summed — `#{ currency: "USD", source: "<pricing page>", per_call: 0.0, operations: #{ name: 0.001 } }`.
//!
//! A price is per upstream request: `operations` prices the requests of a named operation
//! (`META.operations`), `per_call` every other one. Checked when the script is saved, like the rest of
//! `META`: an operation priced here must be declared, and every price is a finite number ≥ 0.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::invalid::Invalid;
use super::operations::Operation;

const KEYS: [&str; 4] = ["currency", "source", "per_call", "operations"];

#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    /// An ISO 4217 code: three upper-case letters.
    pub currency: String,
    /// Where the prices come from (the provider's pricing page).
    pub source: String,
    pub per_call: f64,
    pub operations: BTreeMap<String, f64>,
}

impl Pricing {
    /// Reads `META.pricing`, whose `operations` must name operations in `declared`.
    pub fn from_json(value: &Value, declared: &[Operation]) -> Result<Pricing, Invalid> {
        let bad = |message: String| Invalid::from(format!("META.pricing: {message}"));
        let map = value.as_object().ok_or_else(|| bad("must be a map".into()))?;
        if let Some(key) = map.keys().find(|key| !KEYS.contains(&key.as_str())) {
            return Err(bad(format!("unknown key '{key}' ({})", KEYS.join(", "))));
        }
        let currency = match map.get("currency").and_then(Value::as_str) {
            Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) => code.to_owned(),
            _ => return Err(bad("'currency' is required: an ISO 4217 code such as \"USD\"".into())),
        };
        let source = match map.get("source") {
            None => String::new(),
            Some(Value::String(url)) if url.starts_with("https://") || url.starts_with("http://") => url.clone(),
            Some(_) => return Err(bad("'source' must be the http(s) URL of the pricing page".into())),
        };
        let per_call = map.get("per_call").map_or(Ok(0.0), |v| price("per_call", v)).map_err(bad)?;
        let operations = match map.get("operations") {
            None => BTreeMap::new(),
            Some(Value::Object(prices)) => operations(prices, declared).map_err(bad)?,
            Some(_) => return Err(bad("'operations' must be a map of operation names to prices".into())),
        };
        Ok(Pricing { currency, source, per_call, operations })
    }

    /// What `requests` upstream requests made for `operation` cost.
    pub fn cost(&self, operation: Option<&str>, requests: u32) -> f64 {
        let each = operation.and_then(|name| self.operations.get(name)).copied().unwrap_or(self.per_call);
        each * f64::from(requests)
    }
}

fn price(name: &str, value: &Value) -> Result<f64, String> {
    match value.as_f64() {
        Some(price) if price.is_finite() && price >= 0.0 => Ok(price),
        _ => Err(format!("the price of '{name}' must be a number ≥ 0")),
    }
}

fn operations(prices: &Map<String, Value>, declared: &[Operation]) -> Result<BTreeMap<String, f64>, String> {
    prices
        .iter()
        .map(|(name, value)| {
            if !declared.iter().any(|operation| &operation.name == name) {
                return Err(format!("'{name}' is not an operation in META.operations"));
            }
            Ok((name.clone(), price(name, value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared() -> Vec<Operation> {
        super::super::operations::parse(Some(&json!({
            "create_customer": { "description": "d", "method": "POST", "endpoint": "/v1/customers" },
        })))
        .unwrap()
    }

    #[test]
    fn prices_apply_per_request_by_operation() {
        let spec = json!({ "currency": "USD", "source": "https://stripe.com/pricing", "per_call": 0.002,
                           "operations": { "create_customer": 0.01 } });
        let pricing = Pricing::from_json(&spec, &declared()).unwrap();
        assert_eq!(pricing.cost(Some("create_customer"), 2), 0.02);
        assert_eq!(pricing.cost(None, 3), 0.006);
        assert_eq!(pricing.cost(Some("other"), 0), 0.0);
    }

    #[test]
    fn mistakes_are_named() {
        let problem = |spec: Value| Pricing::from_json(&spec, &declared()).unwrap_err().to_string();
        assert!(problem(json!({ "per_call": 1 })).contains("'currency' is required"));
        assert!(problem(json!({ "currency": "usd" })).contains("'currency' is required"));
        assert!(problem(json!({ "currency": "USD", "per_call": -1 })).contains("'per_call' must be a number ≥ 0"));
        assert!(
            problem(json!({ "currency": "USD", "operations": { "nope": 1 } })).contains("'nope' is not an operation")
        );
        assert!(problem(json!({ "currency": "USD", "source": "javascript:x" })).contains("'source'"));
        assert!(problem(json!({ "currency": "USD", "tier": 1 })).contains("unknown key 'tier'"));
    }
}
