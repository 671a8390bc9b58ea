//! One `tools/call`: arguments → [`Invocation`] → [`Runtime::invoke`] → tool result.
//!
//! A tool call is an ordinary invocation, built the way the HTTP call style builds one, so it runs
//! through the same path with the same sandbox, secrets and limits. Every failure — unknown tool,
//! a server the caller may not use, bad arguments, or the invocation's own error — comes back as a
//! tool result with `isError` and the JSON error (`type`, `message`, …) users see over HTTP, so a
//! model reads what went wrong; the error has already been masked of every secret value.

use std::sync::Arc;

use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock as Content, JsonObject};
use serde_json::Value;

use crate::engine::Data;
use crate::engine::output::JSON;
use crate::error::Error;
use crate::invoke::{Invocation, Target};
use crate::meta::operations::METHODS;
use crate::runtime::Runtime;

use super::access::Access;
use super::catalog::{Catalog, Entry};

/// Runs the tool `name` with `arguments` for a caller with `access`.
pub async fn call(
    runtime: &Arc<Runtime>,
    catalog: &Catalog,
    access: &Access,
    name: &str,
    arguments: JsonObject,
) -> CallToolResult {
    let entry = match catalog.get(name) {
        Some(entry) => entry,
        None => return failure(&Error::NotFound(format!("no tool named '{name}'"))),
    };
    if !access.covers(&entry.server) {
        return failure(&Error::Forbidden(format!("this caller may not use server '{}'", entry.server)));
    }
    let request = match request(entry, arguments) {
        Ok(request) => request,
        Err(error) => return failure(&error),
    };
    match runtime.invoke(request).await.result {
        Ok(reply) => success(reply.output),
        Err(error) => failure(&error),
    }
}

/// The invocation a tool call stands for.
fn request(entry: &Entry, mut arguments: JsonObject) -> Result<Invocation, Error> {
    let target = Target::Name(entry.server.clone());
    let all_pages = match entry.pages {
        true => match arguments.remove(super::catalog::ALL_PAGES) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(all)) => all,
            Some(_) => return Err(Error::BadRequest("the argument 'all_pages' must be true or false".into())),
        },
        false => false,
    };
    if let Some(operation) = entry.operation() {
        let call = operation.call(&arguments)?;
        let mut request = Invocation::with_method(target, call.method);
        request.endpoint = call.endpoint;
        request.data = call.data.map_or(Data::None, Data::Value);
        request.all_pages = all_pages;
        return Ok(request);
    }
    let wrong = |field: &str, problem: &str| {
        let message = format!("the tool '{}' refused its arguments: {field}: {problem}", entry.tool.name);
        Error::InvalidArguments { message, fields: vec![(field.to_owned(), problem.to_owned())] }
    };
    let text = |arguments: &mut JsonObject, key: &str| match arguments.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(wrong(key, "must be a string")),
    };
    let endpoint = text(&mut arguments, "endpoint")?.unwrap_or_default();
    let method = text(&mut arguments, "method")?.unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(wrong("method", &format!("'{method}' is not one of {}", METHODS.join(", "))));
    }
    let data = match arguments.remove("data") {
        None | Some(Value::Null) => Data::None,
        Some(value) => Data::Value(value),
    };
    if let Some(unknown) = arguments.keys().next() {
        return Err(wrong(unknown, "is not an argument this tool takes (endpoint, method, data)"));
    }
    let mut request = Invocation::with_method(target, method);
    request.endpoint = endpoint;
    request.data = data;
    request.all_pages = all_pages;
    Ok(request)
}

/// A finished invocation as a tool result: JSON as structured content too, text as text, bytes as
/// base64. A script that answered with an error status (its envelope's `status`) is a failed call.
fn success(output: crate::engine::Output) -> CallToolResult {
    let mut result = if output.content_type == JSON {
        match serde_json::from_slice::<Value>(&output.body) {
            Ok(value) => CallToolResult::structured(value),
            Err(_) => CallToolResult::success(vec![Content::text(String::from_utf8_lossy(&output.body))]),
        }
    } else {
        match std::str::from_utf8(&output.body) {
            Ok(text) => CallToolResult::success(vec![Content::text(text)]),
            Err(_) => CallToolResult::success(vec![Content::text(format!(
                "{} bytes of {}, base64: {}",
                output.body.len(),
                output.content_type.to_str().unwrap_or("binary data"),
                base64::engine::general_purpose::STANDARD.encode(&output.body)
            ))]),
        }
    };
    if output.status >= 400 {
        result.is_error = Some(true);
    }
    result
}

/// A failed call: the error's JSON form, as text and as structured content.
fn failure(error: &Error) -> CallToolResult {
    CallToolResult::structured_error(error.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_error_type_and_message() {
        let result = failure(&Error::missing_secret("STRIPE_API_KEY"));
        assert_eq!(result.is_error, Some(true));
        let text = serde_json::to_string(&result.content).unwrap();
        assert!(text.contains("missing_secret") && text.contains("STRIPE_API_KEY"), "{text}");
        assert_eq!(result.structured_content.unwrap()["error"]["secret"], "STRIPE_API_KEY");
    }
}
