//! Who may invoke: the invocation tokens, and the one check every invocation entry point makes.
//!
//! Without tokens, anyone who can reach the listen address may invoke (the default address is
//! loopback). With `SWITCHBOARD_INVOKE_TOKENS` or `serve --invoke-token` set, an invocation needs
//! `Authorization: Bearer <token>`. The syntax is a comma-separated list of tokens, each optionally
//! limited to some servers: `tokA,tokB=stripe+slack` — `tokA` may invoke every server, `tokB` only
//! `stripe` and `slack`. Several `--invoke-token` flags add up, and add to the variable.
//!
//! The check is here, not in the HTTP layer, so that every entry point that invokes on behalf of a
//! remote caller (HTTP in both styles, MCP) asks the same question the same way. Webhooks (signed by
//! their sender) and the OAuth callback (bound to its `state`) carry their own proof and do not take
//! tokens; management keeps the admin token; `/health` stays open.
//!
//! Tokens are kept as blake3 digests and compared digest to digest, every token every time, so the
//! time a check takes does not depend on how much of a guess was right.

use std::collections::BTreeSet;

use crate::error::Error;

/// One invocation token.
#[derive(Debug, Clone)]
struct Token {
    digest: blake3::Hash,
    /// The servers it covers; `None` for every server.
    servers: Option<BTreeSet<String>>,
}

/// The set of invocation tokens; empty means invocation is open.
#[derive(Debug, Clone, Default)]
pub struct InvokeAccess {
    tokens: Vec<Token>,
}

impl InvokeAccess {
    /// Reads token lists (`tokA,tokB=stripe+slack`), one per flag or variable; says what is wrong.
    pub fn parse<S: AsRef<str>>(lists: &[S]) -> Result<InvokeAccess, String> {
        let mut tokens: Vec<Token> = Vec::new();
        for entry in lists.iter().flat_map(|list| list.as_ref().split(',')).map(str::trim).filter(|e| !e.is_empty()) {
            let (secret, servers) = match entry.split_once('=') {
                None => (entry, None),
                Some((secret, names)) => {
                    let names: BTreeSet<String> = names.split('+').map(|n| n.trim().to_owned()).collect();
                    if let Some(problem) = names.iter().find_map(|n| crate::server::validate_name(n).err()) {
                        return Err(format!("an invocation token's servers are server names: {problem}"));
                    }
                    (secret.trim(), Some(names))
                }
            };
            if secret.is_empty() || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err("an invocation token is non-empty text without spaces".into());
            }
            let digest = blake3::hash(secret.as_bytes());
            if tokens.iter().any(|t| t.digest == digest) {
                return Err("an invocation token is given twice".into());
            }
            tokens.push(Token { digest, servers });
        }
        Ok(InvokeAccess { tokens })
    }

    /// Whether invocation needs no token.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether a caller presenting `token` may invoke `server` (a name, or the CID of a script no
    /// server is bound to, which only an unlimited token covers): `unauthorized` without a valid token,
    /// `forbidden` for a token that does not cover the server.
    pub fn allows(&self, token: Option<&str>, server: &str) -> Result<(), Error> {
        match self.grant(token)? {
            Some(servers) if !servers.contains(server) => {
                Err(Error::Forbidden(format!("this invocation token does not cover '{server}'")))
            }
            _ => Ok(()),
        }
    }

    /// What a caller presenting `token` may invoke: every server (`None`) or the ones named;
    /// `unauthorized` without a valid token. Entry points that list servers (MCP's `tools/list`) show
    /// only these.
    pub fn grant(&self, token: Option<&str>) -> Result<Option<&BTreeSet<String>>, Error> {
        if self.is_open() {
            return Ok(None);
        }
        let token = token
            .ok_or_else(|| Error::Unauthorized("invocations need Authorization: Bearer <invocation token>".into()))?;
        let digest = blake3::hash(token.as_bytes());
        let found = self.tokens.iter().fold(None, |found, t| if t.digest == digest { Some(t) } else { found });
        let found = found.ok_or_else(|| Error::Unauthorized("the invocation token is not valid".into()))?;
        Ok(found.servers.as_ref())
    }
}

/// The bearer token of an `Authorization` header value, if it is one.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_cover_every_server_or_the_ones_they_name() {
        let access = InvokeAccess::parse(&["tokA,tokB=stripe+slack", "tokC"]).unwrap();
        assert_eq!(access.allows(Some("tokA"), "github").map_err(|e| e.kind()), Ok(()));
        assert_eq!(access.allows(Some("tokC"), "github").map_err(|e| e.kind()), Ok(()));
        assert_eq!(access.allows(Some("tokB"), "slack").map_err(|e| e.kind()), Ok(()));
        assert_eq!(access.allows(Some("tokB"), "github").map_err(|e| e.kind()), Err("forbidden"));
        assert_eq!(access.allows(Some("tokb"), "slack").map_err(|e| e.kind()), Err("unauthorized"));
        assert_eq!(access.allows(Some("tokA "), "slack").map_err(|e| e.kind()), Err("unauthorized"));
        assert_eq!(access.allows(None, "slack").map_err(|e| e.kind()), Err("unauthorized"));
    }

    #[test]
    fn no_tokens_means_open() {
        let access = InvokeAccess::parse::<&str>(&[]).unwrap();
        assert!(access.is_open());
        assert!(access.allows(None, "anything").is_ok());
        assert!(InvokeAccess::parse(&[" , "]).unwrap().is_open());
    }

    #[test]
    fn malformed_lists_are_refused() {
        for bad in ["tok=Stripe", "=stripe", "a b", "tok=", "dup,dup", "t=stripe+"] {
            assert!(InvokeAccess::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_bearer_credentials_are_tokens() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(None), None);
    }
}
