//! The token cache: one slot per server, and at most one token request in flight per slot.
//!
//! A caller that finds a fresh token uses it. Otherwise the first caller becomes the *leader*: it opens
//! a flight (a watch channel), runs the request, stores the token and publishes the outcome; every
//! caller arriving meanwhile waits on that flight and gets the same token or the same error, so forty
//! concurrent calls cost one token request. A leader that goes away without publishing closes its
//! channel, and the next caller takes over. A caller that was refused with a token (a 401) names it,
//! so that it renews only if nobody has renewed it yet.
//!
//! A slot belongs to a server *and* the script it runs: an edit that changes `META.oauth2` (scopes, a
//! client) gets its own token at once instead of using one obtained for the old declaration.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::token::Token;
use crate::cid::Cid;
use crate::error::Error;

type Outcome = Option<Result<Token, Error>>;

#[derive(Default)]
struct Slot {
    token: Option<Token>,
    flight: Option<watch::Receiver<Outcome>>,
}

/// A server name and the CID of the script it runs.
type SlotKey = (String, Cid);

/// Access tokens per server, in memory only (what must survive a restart is a
/// [`Connection`](super::connection::Connection)).
#[derive(Default)]
pub struct Tokens {
    slots: Mutex<HashMap<SlotKey, Arc<Mutex<Slot>>>>,
}

/// What a caller does next.
enum Step {
    Use(Token),
    Wait(watch::Receiver<Outcome>),
    Lead(watch::Sender<Outcome>),
}

impl Tokens {
    fn slot(&self, server: &str, script: Cid) -> Arc<Mutex<Slot>> {
        self.slots.lock().entry((server.to_owned(), script)).or_default().clone()
    }

    /// The cached token of `server` running `script`, if it is still fresh.
    pub fn cached(&self, server: &str, script: Cid) -> Option<Token> {
        let slot = self.slots.lock().get(&(server.to_owned(), script))?.clone();
        let token = slot.lock().token.clone();
        token.filter(Token::fresh)
    }

    /// Drops every cached token of `server` (a new connection was stored).
    pub fn forget(&self, server: &str) {
        self.slots.lock().retain(|(name, _), _| name != server);
    }

    /// A fresh token for `server` running `script` that is not `rejected`, running `fetch` at most once
    /// across every concurrent caller.
    pub async fn get<F, Fut>(&self, server: &str, script: Cid, rejected: Option<&str>, fetch: F) -> Result<Token, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, Error>>,
    {
        let slot = self.slot(server, script);
        let mut fetch = Some(fetch);
        loop {
            let step = {
                let mut state = slot.lock();
                match (&state.token, &state.flight) {
                    (Some(token), _) if token.fresh() && Some(token.access.as_str()) != rejected => {
                        Step::Use(token.clone())
                    }
                    // A flight whose leader is gone has a closed channel: take over.
                    (_, Some(flight)) if flight.has_changed().is_ok() => Step::Wait(flight.clone()),
                    _ => {
                        let (publish, flight) = watch::channel(None);
                        state.flight = Some(flight);
                        Step::Lead(publish)
                    }
                }
            };
            match step {
                Step::Use(token) => return Ok(token),
                Step::Wait(mut flight) => {
                    if let Ok(outcome) = flight.wait_for(Option::is_some).await
                        && let Some(outcome) = outcome.clone()
                    {
                        return outcome;
                    }
                }
                Step::Lead(publish) => {
                    let fetch = fetch.take().ok_or_else(|| Error::Internal("token request led twice".into()))?;
                    let outcome = fetch().await;
                    let mut state = slot.lock();
                    state.flight = None;
                    if let Ok(token) = &outcome {
                        state.token = Some(token.clone());
                    }
                    publish.send_replace(Some(outcome.clone()));
                    return outcome;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn script() -> Cid {
        Cid::from_digest([7; 32])
    }

    fn token(access: &str, lifetime: Duration) -> Token {
        Token::new(access.into(), None, Some(lifetime), vec![])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn forty_concurrent_callers_cost_one_request() {
        let tokens = Arc::new(Tokens::default());
        let requests = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let (tokens, requests, gate) = (tokens.clone(), requests.clone(), gate.clone());
            callers.spawn(async move {
                let fetch = || async {
                    requests.fetch_add(1, Ordering::SeqCst);
                    let _open = gate.acquire().await;
                    Ok(token("shared", Duration::from_secs(3600)))
                };
                tokens.get("s", script(), None, fetch).await
            });
        }
        gate.add_permits(1);
        while let Some(outcome) = callers.join_next().await {
            assert_eq!(outcome.unwrap().unwrap().access, "shared");
        }
        assert_eq!(requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn waiters_share_the_leaders_error_and_a_401_renews_once() {
        let tokens = Tokens::default();
        let gate = tokio::sync::Semaphore::new(0);
        let requests = AtomicUsize::new(0);
        let fetch = || async {
            requests.fetch_add(1, Ordering::SeqCst);
            let _open = gate.acquire().await;
            Err::<Token, _>(Error::Timeout("slow".into()))
        };
        let open = async {
            tokio::task::yield_now().await;
            gate.add_permits(1);
        };
        let (leader, waiter, ()) =
            tokio::join!(tokens.get("s", script(), None, fetch), tokens.get("s", script(), None, fetch), open);
        assert!(matches!((leader, waiter), (Err(Error::Timeout(_)), Err(Error::Timeout(_)))));
        assert_eq!(requests.load(Ordering::SeqCst), 1);

        let first =
            tokens.get("s", script(), None, || async { Ok(token("one", Duration::from_secs(3600))) }).await.unwrap();
        let again =
            tokens.get("s", script(), None, || async { Ok(token("two", Duration::from_secs(3600))) }).await.unwrap();
        assert_eq!((first.access.as_str(), again.access.as_str()), ("one", "one"));
        let renewed = tokens
            .get("s", script(), Some("one"), || async { Ok(token("two", Duration::from_secs(3600))) })
            .await
            .unwrap();
        assert_eq!(renewed.access, "two");
        let late = tokens.get("s", script(), Some("one"), || async { Ok(token("three", Duration::from_secs(3600))) });
        assert_eq!(late.await.unwrap().access, "two", "a 401 already answered must not renew again");
        let edited = Cid::from_digest([8; 32]);
        assert!(tokens.cached("s", edited).is_none(), "an edited script shares the old declaration's token");
        tokens.forget("s");
        assert!(tokens.cached("s", script()).is_none());
    }

    #[tokio::test]
    async fn a_leader_that_goes_away_hands_over() {
        let tokens = Tokens::default();
        let abandoned = tokens.get("s", script(), None, std::future::pending::<Result<Token, Error>>);
        assert!(tokio::time::timeout(Duration::from_millis(20), abandoned).await.is_err());
        let next = tokens.get("s", script(), None, || async { Ok(token("t", Duration::from_secs(60))) });
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), next).await.unwrap().unwrap().access, "t");
    }
}
