//! Digests, MACs and identifiers: `crypto` and `uuid`. Digests and MACs return blobs; compose with
//! `hex::encode` or `base64::encode` for the form an API wants.

use hmac::{Hmac, Mac};
use rhai::{Blob, Dynamic, Module};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::codec::bytes_of;
use super::native::{Fallible, func};
use crate::engine::pace::{PIECE, Pacer};

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Feeds `message` to `update` in pieces, stopping at the run's deadline between them.
fn paced(message: &[u8], mut update: impl FnMut(&[u8])) -> Fallible<()> {
    let mut pacer = Pacer::start(message.len())?;
    for piece in message.chunks(PIECE) {
        update(piece);
        pacer.step(piece.len())?;
    }
    Ok(())
}

fn digest<D: Digest>(data: &Dynamic) -> Fallible<Blob> {
    let mut hasher = D::new();
    paced(&bytes_of(data, "data")?, |piece| hasher.update(piece))?;
    Ok(hasher.finalize().to_vec())
}

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &Dynamic, message: &Dynamic) -> Fallible<Blob> {
    let mut mac = <M as Mac>::new_from_slice(&bytes_of(key, "key")?).expect("HMAC accepts keys of any length");
    paced(&bytes_of(message, "message")?, |piece| mac.update(piece))?;
    Ok(mac.finalize().into_bytes().to_vec())
}

pub fn module() -> Module {
    let mut module = Module::new();
    func("sha256").set_into_module(&mut module, |data: Dynamic| digest::<Sha256>(&data));
    func("sha1").set_into_module(&mut module, |data: Dynamic| digest::<Sha1>(&data));
    func("hmac_sha256")
        .set_into_module(&mut module, |key: Dynamic, message: Dynamic| hmac::<Hmac<Sha256>>(&key, &message));
    func("hmac_sha1").set_into_module(&mut module, |key: Dynamic, message: Dynamic| hmac::<Hmac<Sha1>>(&key, &message));
    module
}

pub fn uuid_module() -> Module {
    let mut module = Module::new();
    func("v4").set_into_module(&mut module, || uuid::Uuid::new_v4().to_string());
    module
}
