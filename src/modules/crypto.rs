//! Digests, MACs and identifiers: `crypto` and `uuid`. Digests and MACs return blobs; compose with
//! `hex::encode` or `base64::encode` for the form an API wants.

use hmac::{Hmac, Mac};
use rhai::{Blob, Dynamic, Module};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::codec::bytes_of;
use super::native::{Fallible, func};

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

pub fn module() -> Module {
    let mut module = Module::new();
    func("sha256").set_into_module(&mut module, |data: Dynamic| -> Fallible<Blob> {
        Ok(Sha256::digest(bytes_of(&data, "data")?).to_vec())
    });
    func("sha1").set_into_module(&mut module, |data: Dynamic| -> Fallible<Blob> {
        Ok(Sha1::digest(bytes_of(&data, "data")?).to_vec())
    });
    func("hmac_sha256").set_into_module(&mut module, |key: Dynamic, message: Dynamic| -> Fallible<Blob> {
        Ok(hmac_sha256(&bytes_of(&key, "key")?, &bytes_of(&message, "message")?))
    });
    func("hmac_sha1").set_into_module(&mut module, |key: Dynamic, message: Dynamic| -> Fallible<Blob> {
        Ok(hmac_sha1(&bytes_of(&key, "key")?, &bytes_of(&message, "message")?))
    });
    module
}

pub fn uuid_module() -> Module {
    let mut module = Module::new();
    func("v4").set_into_module(&mut module, || uuid::Uuid::new_v4().to_string());
    module
}
