//! Content identifiers: CIDv1, raw codec, blake3-256, multibase base32 lower-case.
//!
//! A CID is the 4-byte prefix `01 55 1e 20` (version 1, raw codec, blake3 multihash, 32-byte digest)
//! followed by the blake3 digest, base32-encoded lower-case without padding behind the multibase
//! prefix `b`. Every CID is therefore 59 characters long and starts with `bafkr4i`. Parsing is strict:
//! anything that does not round-trip to the same text is rejected, so two spellings never name one blob.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use data_encoding::{Encoding, Specification};

/// Version 1, raw codec (0x55), blake3 multihash (0x1e), digest length 32.
const PREFIX: [u8; 4] = [0x01, 0x55, 0x1e, 0x20];

/// Length of the textual form: `b` + base32 of 36 bytes (58 characters).
pub const CID_LEN: usize = 59;

static BASE32_LOWER: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    spec.encoding().expect("valid base32 specification")
});

/// The blake3 digest of a blob, displayed and parsed as a CIDv1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid([u8; 32]);

impl Cid {
    /// Hashes `bytes` into the CID that names them.
    pub fn of(bytes: &[u8]) -> Cid {
        Cid(*blake3::hash(bytes).as_bytes())
    }

    /// Rebuilds a CID from a raw 32-byte digest (as kept in the store).
    pub fn from_digest(digest: [u8; 32]) -> Cid {
        Cid(digest)
    }

    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why a text is not a CID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    #[error("a CID is {CID_LEN} characters long, this one has {0}")]
    Length(usize),
    #[error("a CID starts with the multibase prefix 'b'")]
    Multibase,
    #[error("a CID is lower-case base32 (a-z, 2-7)")]
    Encoding,
    #[error("not a CIDv1 with raw codec and blake3-256 digest")]
    Prefix,
}

impl FromStr for Cid {
    type Err = CidError;

    fn from_str(text: &str) -> Result<Cid, CidError> {
        if text.len() != CID_LEN {
            return Err(CidError::Length(text.len()));
        }
        let body = text.strip_prefix('b').ok_or(CidError::Multibase)?;
        let bytes = BASE32_LOWER.decode(body.as_bytes()).map_err(|_| CidError::Encoding)?;
        let (prefix, digest) = bytes.split_at(PREFIX.len());
        if prefix != PREFIX {
            return Err(CidError::Prefix);
        }
        let digest: [u8; 32] = digest.try_into().map_err(|_| CidError::Prefix)?;
        Ok(Cid(digest))
    }
}

/// The textual form of a CID, on the stack (formatting one costs no allocation).
pub struct CidText([u8; CID_LEN]);

impl CidText {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base32 is ASCII")
    }
}

impl Cid {
    pub fn text(&self) -> CidText {
        let mut bytes = [0u8; 36];
        bytes[..4].copy_from_slice(&PREFIX);
        bytes[4..].copy_from_slice(&self.0);
        let mut text = [b'b'; CID_LEN];
        BASE32_LOWER.encode_mut(&bytes, &mut text[1..]);
        CidText(text)
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

impl serde::Serialize for Cid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Cid, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed with the Python recipe of the product specification.
    const EMPTY: &str = "bafkr4ifpcne3t5pzugtkaqcn5i3nzskjtpfslsnnyejlpte2spfoihzsmi";
    const HELLO: &str = "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4";
    const MIB_OF_BYTE_PATTERN: &str = "bafkr4iduzncb7uehozgktq3jjwtuf27dbs7lgbqkc4ajzkayexd2ruidim";

    #[test]
    fn empty_blob_matches_the_reference_recipe() {
        assert_eq!(Cid::of(b"").to_string(), EMPTY);
    }

    #[test]
    fn hello_matches_the_reference_recipe() {
        assert_eq!(Cid::of(b"hello").to_string(), HELLO);
    }

    #[test]
    fn one_mebibyte_matches_the_reference_recipe() {
        let blob: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        assert_eq!(Cid::of(&blob).to_string(), MIB_OF_BYTE_PATTERN);
    }

    #[test]
    fn every_cid_has_the_documented_shape() {
        for input in [&b""[..], b"hello", b"x"] {
            let text = Cid::of(input).to_string();
            assert_eq!(text.len(), CID_LEN);
            assert!(text.starts_with("bafkr4i"));
            assert_eq!(text.parse::<Cid>(), Ok(Cid::of(input)));
        }
    }

    #[test]
    fn parse_round_trips() {
        let cid: Cid = HELLO.parse().unwrap();
        assert_eq!(cid, Cid::of(b"hello"));
        assert_eq!(cid.to_string(), HELLO);
    }

    #[test]
    fn malformed_cids_are_rejected_with_the_reason() {
        assert_eq!("".parse::<Cid>(), Err(CidError::Length(0)));
        assert_eq!(HELLO[..58].parse::<Cid>(), Err(CidError::Length(58)));
        assert_eq!(format!("{HELLO}a").parse::<Cid>(), Err(CidError::Length(60)));
        assert_eq!(format!("z{}", &HELLO[1..]).parse::<Cid>(), Err(CidError::Multibase));
        assert_eq!(HELLO.to_uppercase().parse::<Cid>(), Err(CidError::Multibase));
        assert_eq!(format!("b{}", HELLO[1..].to_uppercase()).parse::<Cid>(), Err(CidError::Encoding));
        assert_eq!(format!("{}1", &HELLO[..58]).parse::<Cid>(), Err(CidError::Encoding));
        // Non-zero trailing bits spell the same bytes differently: not canonical, so rejected.
        let last = HELLO.as_bytes()[58] as char;
        let twin = if last == '4' { '5' } else { '4' };
        assert!(format!("{}{twin}", &HELLO[..58]).parse::<Cid>().is_err());
        // A sha2-256 CIDv1 (raw codec) is a valid CID, but not one of ours.
        let sha2 = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq";
        assert_eq!(sha2.parse::<Cid>(), Err(CidError::Prefix));
    }
}
