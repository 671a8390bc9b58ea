//! Inbound webhooks: `POST /webhooks/{name}` for servers whose `META.webhook` names a signing scheme and
//! the secret it is keyed with.
//!
//! The order of a receipt is the whole point of this module, because it is where integrations usually go
//! wrong (unverified payloads, replays, lost events):
//!
//! 1. [`signature`] checks the provider's signature over the raw body bytes, in constant time, before
//!    anything is parsed or stored. A bad, missing or stale signature is `unauthorized` and nothing else
//!    happens.
//! 2. [`event`] reads the delivery id the provider gives each event and writes the receipt: the body as
//!    a blob, a record of the delivery (id, provider headers, body CID, time) stored by its own CID — the
//!    event's CID — and a row in the store's event table, all in one transaction. A delivery id the server
//!    has already stored is a duplicate and runs nothing; an event that cannot be stored is answered
//!    `unavailable` (503) so that the provider retries.
//! 3. [`receiver`] hands the stored event to the script's `fn webhook(event)` through
//!    [`Runtime::invoke`](crate::runtime::Runtime::invoke), like every other run, taking it from the
//!    durable [`queue`], which retries a failed run with backoff until it succeeds or is `dead`; once
//!    stored, the provider gets a 2xx whatever the handler does. Any event can be replayed from the store.
//!
//! The module knows nothing of HTTP routing: the HTTP layer passes it the headers, the body and the URL
//! the provider signed, and turns what comes back into a response.

pub mod event;
pub mod queue;
pub mod receiver;
pub mod signature;

use bytes::Bytes;
use http::HeaderMap;

pub use receiver::Received;

/// How long a body whose scheme does not sign the delivery id is remembered: the same signed body
/// within this window is the same event, whatever id it comes with. Longer than any provider's retries
/// (Shopify's last 48 hours); a byte-identical body arriving later runs again.
pub const SAME_BODY_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A delivery as it arrived: the raw body, its headers, and the public URL it was sent to (which Twilio
/// signs).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub url: String,
}
