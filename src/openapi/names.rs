//! Names the importer makes: operations, arguments, secrets and variables.
//!
//! An operation is named from its `operationId` in snake case (`getPetById` → `get_pet_by_id`), or from
//! its method and path when it has none (`get_pets_pet_id`), cut so that the MCP tool
//! `{server}__{operation}` stays within 64 characters. Two operations that come out the same get
//! `_2`, `_3`… in document order, so the same document always gives the same names.

use std::collections::HashSet;

use heck::ToSnakeCase;

/// Longest operation name the declaration layer takes.
const MAX_OPERATION: usize = 48;
/// Tool names (`{server}__{operation}`) are at most this long.
const MAX_TOOL: usize = 64;
/// An operation name needs room to say something.
const SHORTEST_BUDGET: usize = 8;
/// Longest argument name: what LLM APIs accept as a property name (`[A-Za-z0-9_.-]{1,64}`).
const MAX_ARGUMENT: usize = 64;

/// How long operation names of the server `server` may be, or why the name is too long for any.
pub fn budget(server: &str) -> Result<usize, String> {
    let budget = MAX_OPERATION.min(MAX_TOOL.saturating_sub(server.len() + 2));
    match budget >= SHORTEST_BUDGET {
        true => Ok(budget),
        false => Err(format!(
            "the server name '{server}' leaves too little of the 64-character MCP tool name for operations: use \
             at most {} characters",
            MAX_TOOL - 2 - SHORTEST_BUDGET
        )),
    }
}

/// Hands out unique operation names within a budget.
pub struct Operations {
    budget: usize,
    taken: HashSet<String>,
}

impl Operations {
    pub fn new(budget: usize) -> Operations {
        Operations { budget, taken: HashSet::new() }
    }

    /// A fresh name for an operation with this `operationId`, or this method and path.
    pub fn name(&mut self, id: Option<&str>, method: &str, path: &str) -> String {
        let wanted = match id.map(snake).filter(|s| !s.is_empty()) {
            Some(name) => name,
            None => snake(&format!("{method} {}", path.replace(['{', '}'], ""))),
        };
        let wanted = if wanted.starts_with(|c: char| c.is_ascii_lowercase()) { wanted } else { format!("op_{wanted}") };
        let mut name = cut(&wanted, self.budget);
        let mut n = 1;
        while self.taken.contains(&name) {
            n += 1;
            let suffix = format!("_{n}");
            name = format!("{}{suffix}", cut(&wanted, self.budget - suffix.len()));
        }
        self.taken.insert(name.clone());
        name
    }
}

/// Lower-case letters, digits and single `_`, from any text.
fn snake(text: &str) -> String {
    let snake = text.to_snake_case();
    let mut out = String::with_capacity(snake.len());
    for c in snake.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '_' };
        if !(c == '_' && (out.is_empty() || out.ends_with('_'))) {
            out.push(c);
        }
    }
    out.trim_end_matches('_').to_owned()
}

fn cut(name: &str, length: usize) -> String {
    name[..name.len().min(length)].trim_end_matches('_').to_owned()
}

/// A parameter's name as an argument: characters other than `[A-Za-z0-9_.-]` become `_`, and a path
/// parameter (which fills `{field}` in the endpoint) keeps only `[A-Za-z0-9_]` and starts with a letter
/// or `_`.
pub fn argument(name: &str, in_path: bool) -> String {
    let keep = |c: char| c.is_ascii_alphanumeric() || c == '_' || (!in_path && (c == '.' || c == '-'));
    let mut out: String = name.chars().map(|c| if keep(c) { c } else { '_' }).take(MAX_ARGUMENT).collect();
    if out.is_empty() || (in_path && out.starts_with(|c: char| c.is_ascii_digit())) {
        out.insert(0, '_');
    }
    out
}

/// Upper-case letters, digits and `_`: a secret's or variable's name.
pub fn constant(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_snake_case_unique_and_fit_the_tool_name() {
        let mut names = Operations::new(budget("pets").unwrap());
        assert_eq!(names.name(Some("getPetById"), "get", "/pets/{id}"), "get_pet_by_id");
        assert_eq!(names.name(Some("get-pet-by-id"), "get", "/pets/{id}"), "get_pet_by_id_2");
        assert_eq!(names.name(None, "delete", "/pets/{pet-id}/tags"), "delete_pets_pet_id_tags");
        assert_eq!(names.name(Some("2fa.enable"), "post", "/2fa"), "op_2fa_enable");
        assert_eq!(names.name(Some("Ünïcode ✓"), "get", "/x"), "n_code");
        let long = "listEveryThingThatTheAccountHasEverOwnedIncludingArchivedThings";
        let first = names.name(Some(long), "get", "/x");
        let second = names.name(Some(long), "get", "/y");
        assert_eq!(first.len(), 48);
        assert!(second.ends_with("_2") && second.len() <= 48 && second != first);
        let server = "a_rather_long_server_name_for_things_42";
        let mut short = Operations::new(budget(server).unwrap());
        assert!(format!("{server}__{}", short.name(Some(long), "get", "/")).len() <= 64);
        assert!(budget(&"x".repeat(60)).unwrap_err().contains("at most 54 characters"));
    }

    #[test]
    fn arguments_keep_to_what_models_accept() {
        assert_eq!(argument("page[size]", false), "page_size_");
        assert_eq!(argument("X-Request-Id", false), "X-Request-Id");
        assert_eq!(argument("user.id", true), "user_id");
        assert_eq!(argument("1st", true), "_1st");
        assert_eq!(constant("pets-v2"), "PETS_V2");
    }
}
