//! The packed image: one self-contained file holding a format version, the manifest (servers by CID,
//! variables, secret names) and every blob the manifest references.
//!
//! The file is JSON with every map in key order and the servers in name order, so the same state packs
//! to the same bytes whatever order it was built in, and the file's own CID — the boot CID — names
//! that state. Secret values travel only when asked for, sealed under a key derived from a passphrase
//! with Argon2id (XChaCha20-Poly1305, the secret's name as associated data); such an image carries a
//! fresh salt and fresh nonces, so it is not byte-for-byte reproducible.

use std::collections::BTreeMap;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{Image, ImageServer, SecretValues};
use crate::cid::Cid;
use crate::secrets::Vault;

pub const FORMAT: &str = "switchboard-image/1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Packed {
    format: String,
    manifest: Manifest,
    /// Blob bytes (base64) by CID.
    blobs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    servers: Vec<ManifestServer>,
    variables: BTreeMap<String, String>,
    secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed_secrets: Option<Sealed>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestServer {
    name: String,
    cid: String,
    enabled: bool,
}

/// Secret values sealed under a passphrase.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    kdf: String,
    salt: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    values: BTreeMap<String, String>,
}

const KDF: &str = "argon2id";

fn derive(passphrase: &str, salt: &[u8], memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Vault, String> {
    let params =
        Params::new(memory_kib, iterations, parallelism, Some(32)).map_err(|e| format!("key derivation: {e}"))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| format!("key derivation: {e}"))?;
    Ok(Vault::new(&key))
}

/// Packs `image`. With `passphrase`, the image's secret values are included, sealed.
pub fn pack(image: &Image, passphrase: Option<&str>) -> Result<Vec<u8>, String> {
    let mut blobs = BTreeMap::new();
    let mut servers: Vec<ManifestServer> = image
        .servers
        .iter()
        .map(|server| {
            let cid = Cid::of(&server.script).to_string();
            blobs.insert(cid.clone(), STANDARD.encode(&server.script));
            ManifestServer { name: server.name.clone(), cid, enabled: server.enabled }
        })
        .collect();
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    let mut secrets = image.secrets.clone();
    secrets.sort();
    secrets.dedup();
    let sealed_secrets = match passphrase {
        None => None,
        Some(passphrase) => {
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            let (memory_kib, iterations, parallelism) =
                (Params::DEFAULT_M_COST, Params::DEFAULT_T_COST, Params::DEFAULT_P_COST);
            let vault = derive(passphrase, &salt, memory_kib, iterations, parallelism)?;
            let values = image
                .secret_values
                .0
                .iter()
                .map(|(name, value)| (name.clone(), STANDARD.encode(vault.seal(name, value))))
                .collect();
            Some(Sealed { kdf: KDF.into(), salt: STANDARD.encode(salt), memory_kib, iterations, parallelism, values })
        }
    };
    let packed = Packed {
        format: FORMAT.into(),
        manifest: Manifest { servers, variables: image.variables.clone(), secrets, sealed_secrets },
        blobs,
    };
    let mut bytes = serde_json::to_vec(&packed).map_err(|e| format!("cannot write the image: {e}"))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Reads a packed image, checking every blob against its CID and every reference. Returns what could be
/// read and every problem found; an image with problems must not be imported. Sealed secret values are
/// opened only with the passphrase.
pub fn unpack(bytes: &[u8], passphrase: Option<&str>) -> (Image, Vec<String>) {
    let mut problems = Vec::new();
    let packed: Packed = match serde_json::from_slice(bytes) {
        Ok(packed) => packed,
        Err(e) => {
            return (
                Image::default(),
                vec![format!("not a readable Switchboard image (truncated or corrupted?): {e}")],
            );
        }
    };
    if packed.format != FORMAT {
        problems.push(format!("image format '{}' is not supported (this Switchboard reads {FORMAT})", packed.format));
        return (Image::default(), problems);
    }
    let mut blobs = BTreeMap::new();
    for (key, encoded) in &packed.blobs {
        let Ok(cid) = key.parse::<Cid>() else {
            problems.push(format!("blob key '{key}' is not a CID"));
            continue;
        };
        match STANDARD.decode(encoded) {
            Ok(bytes) if Cid::of(&bytes) == cid => {
                blobs.insert(cid, bytes);
            }
            Ok(_) => problems.push(format!("blob {cid} does not match its CID: the image was altered or corrupted")),
            Err(_) => problems.push(format!("blob {cid} is not valid base64")),
        }
    }
    let mut image =
        Image { variables: packed.manifest.variables, secrets: packed.manifest.secrets, ..Image::default() };
    for server in packed.manifest.servers {
        let blob = server.cid.parse::<Cid>().ok().and_then(|cid| blobs.get(&cid));
        match blob {
            Some(script) => {
                image.servers.push(ImageServer { name: server.name, script: script.clone(), enabled: server.enabled })
            }
            None if server.cid.parse::<Cid>().is_err() => {
                problems.push(format!("server '{}' names '{}', which is not a CID", server.name, server.cid));
            }
            None if !packed.blobs.contains_key(&server.cid) => {
                problems
                    .push(format!("server '{}' names blob {}, which the image does not hold", server.name, server.cid));
            }
            None => {} // the blob's own problem is already reported
        }
    }
    let sealed = packed.manifest.sealed_secrets;
    image.sealed_secrets = sealed.iter().flat_map(|sealed| sealed.values.keys().cloned()).collect();
    if let (Some(sealed), Some(passphrase)) = (sealed, passphrase) {
        match open_secrets(&sealed, passphrase) {
            Ok(values) => image.secret_values = SecretValues(values),
            Err(problem) => problems.push(problem),
        }
    }
    (image, problems)
}

fn open_secrets(sealed: &Sealed, passphrase: &str) -> Result<BTreeMap<String, String>, String> {
    if sealed.kdf != KDF {
        return Err(format!("secret values are sealed with '{}', which this Switchboard does not know", sealed.kdf));
    }
    let salt = STANDARD.decode(&sealed.salt).map_err(|_| "the secrets' salt is not base64".to_string())?;
    let vault = derive(passphrase, &salt, sealed.memory_kib, sealed.iterations, sealed.parallelism)?;
    sealed
        .values
        .iter()
        .map(|(name, value)| {
            let bytes = STANDARD.decode(value).map_err(|_| format!("secret '{name}' is not base64"))?;
            let value = vault
                .open(name, &bytes)
                .map_err(|_| format!("secret '{name}' does not open: wrong passphrase, or the image was altered"))?;
            Ok((name.clone(), value))
        })
        .collect()
}

/// Whether `bytes` look like a packed image (rather than a boot source).
pub fn is_packed(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| v.get("format").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(order: &[&str]) -> Image {
        Image {
            servers: order
                .iter()
                .map(|name| ImageServer {
                    name: name.to_string(),
                    script: format!("// {name}").into_bytes(),
                    enabled: true,
                })
                .collect(),
            variables: BTreeMap::from([("B".into(), "2".into()), ("A".into(), "1".into())]),
            secrets: vec!["Z".into(), "Y".into()],
            ..Image::default()
        }
    }

    #[test]
    fn the_same_state_packs_to_the_same_bytes_in_any_order() {
        assert_eq!(pack(&image(&["a", "b", "c"]), None).unwrap(), pack(&image(&["c", "a", "b"]), None).unwrap());
    }

    #[test]
    fn an_image_round_trips() {
        let bytes = pack(&image(&["a", "b"]), None).unwrap();
        let (read, problems) = unpack(&bytes, None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(read.servers.len(), 2);
        assert_eq!(read.secrets, vec!["Y".to_string(), "Z".into()]);
    }

    #[test]
    fn secret_values_travel_sealed_and_open_only_with_the_passphrase() {
        let mut with_values = image(&["a"]);
        with_values.secret_values = SecretValues(BTreeMap::from([("Y".into(), "value-of-y".into())]));
        let bytes = pack(&with_values, Some("correct horse")).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("value-of-y"));
        let (read, problems) = unpack(&bytes, Some("correct horse"));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(read.secret_values.0["Y"], "value-of-y");
        let (_, problems) = unpack(&bytes, Some("wrong"));
        assert!(problems[0].contains("wrong passphrase"), "{problems:?}");
        let (read, problems) = unpack(&bytes, None);
        assert!(problems.is_empty() && read.secret_values.0.is_empty());
    }

    #[test]
    fn every_problem_is_named() {
        let bytes = pack(&image(&["a", "b"]), None).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        // One byte changed inside a blob.
        let tampered = text.replacen("Ly8g", "Ly9g", 1);
        let (_, problems) = unpack(tampered.as_bytes(), None);
        assert!(problems.iter().any(|p| p.contains("does not match its CID")), "{problems:?}");
        // Truncated.
        let (_, problems) = unpack(&bytes[..bytes.len() / 2], None);
        assert!(problems[0].contains("truncated"), "{problems:?}");
        // A manifest naming a blob the image does not hold.
        let cid_a = Cid::of(b"// a").to_string();
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        value["blobs"].as_object_mut().unwrap().remove(&cid_a);
        let (_, problems) = unpack(&serde_json::to_vec(&value).unwrap(), None);
        assert_eq!(problems, vec![format!("server 'a' names blob {cid_a}, which the image does not hold")]);
    }
}
