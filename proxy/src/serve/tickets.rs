//! Session ticket keys shared by several instances (`session_ticket_key_file`), so that a
//! client resumes its TLS session on any replica behind a load balancer.
//!
//! The file holds keys of 80 random bytes each, newest first, as nginx's
//! `ssl_session_ticket_key` takes them (`openssl rand 80 > FILE`). Each key's first 16
//! bytes name it; an AES-256-GCM key is derived from the other 64 with HKDF-SHA256. Tickets
//! are sealed with the first key and opened with whichever key their name says, so a file
//! rotated by putting a new key in front keeps the tickets of the previous one working.
//! A reload reads the file again; one that no longer reads keeps the keys in use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use rustls::server::ProducesTickets;

/// The size of one key in the file (nginx's format for AES-256 tickets).
pub const KEY_LEN: usize = 80;
/// The part of a key that names it, sent in each ticket.
const NAME_LEN: usize = 16;
/// How long clients are told a ticket is good for: rustls' own ticketer says the same.
/// The keys themselves live until the operator removes them from the file.
const TICKET_LIFETIME_SECS: u32 = 12 * 60 * 60;
/// Keys a file may hold: the current one and a few it replaced.
const MAX_KEYS: usize = 16;

/// A session ticket key file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TicketKeyError {
    #[error("session_ticket_key_file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "session_ticket_key_file {}: {len} bytes; it must hold keys of {KEY_LEN} random bytes each (1 to {MAX_KEYS}), newest first: make one with `openssl rand {KEY_LEN} > {}`",
        path.display(), path.display()
    )]
    Size { path: PathBuf, len: usize },
    #[error("session_ticket_key_file {}: cannot derive a ticket key", path.display())]
    Derive { path: PathBuf },
}

/// One key: its name and the cipher derived from it.
struct TicketKey {
    name: [u8; NAME_LEN],
    cipher: RandomizedNonceKey,
}

/// Tickets sealed with keys from a file, shared by every instance given the same file.
pub struct FileTicketer {
    path: PathBuf,
    /// Newest first; never empty.
    keys: ArcSwap<Vec<TicketKey>>,
}

impl std::fmt::Debug for FileTicketer {
    // The keys are secrets: only the file is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTicketer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileTicketer {
    /// Reads the keys from `path`.
    pub fn load(path: &Path) -> Result<Arc<Self>, TicketKeyError> {
        Ok(Arc::new(Self {
            path: path.to_owned(),
            keys: ArcSwap::from_pointee(read_keys(path)?),
        }))
    }

    /// Reads the file again; on an error the keys in use stay.
    pub fn reload(&self) -> Result<(), TicketKeyError> {
        self.keys.store(Arc::new(read_keys(&self.path)?));
        Ok(())
    }
}

impl ProducesTickets for FileTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_SECS
    }

    /// `name ‖ nonce ‖ AES-256-GCM(plain) ‖ tag`, the name authenticated as well.
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.load();
        let key = keys.first()?;
        let mut sealed = plain.to_vec();
        let nonce = key
            .cipher
            .seal_in_place_append_tag(Aad::from(key.name), &mut sealed)
            .ok()?;
        let mut ticket = Vec::with_capacity(NAME_LEN + NONCE_LEN + sealed.len());
        ticket.extend_from_slice(&key.name);
        ticket.extend_from_slice(nonce.as_ref());
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let (name, rest) = ticket.split_at_checked(NAME_LEN)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let keys = self.keys.load();
        let key = keys.iter().find(|k| k.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key
            .cipher
            .open_in_place(nonce, Aad::from(key.name), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// The keys of the file at `path`, newest first.
fn read_keys(path: &Path) -> Result<Vec<TicketKey>, TicketKeyError> {
    let bytes = std::fs::read(path).map_err(|source| TicketKeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !size_ok(bytes.len()) {
        return Err(TicketKeyError::Size {
            path: path.to_owned(),
            len: bytes.len(),
        });
    }
    parse_keys(&bytes).ok_or_else(|| TicketKeyError::Derive {
        path: path.to_owned(),
    })
}

/// Whether `len` bytes are 1 to [`MAX_KEYS`] keys.
fn size_ok(len: usize) -> bool {
    len > 0 && len.is_multiple_of(KEY_LEN) && len <= KEY_LEN * MAX_KEYS
}

/// Keys of [`KEY_LEN`] bytes each; `None` when the size is wrong or a key cannot be made.
fn parse_keys(bytes: &[u8]) -> Option<Vec<TicketKey>> {
    if !size_ok(bytes.len()) {
        return None;
    }
    bytes
        .chunks_exact(KEY_LEN)
        .map(|key| {
            let (name, secret) = key.split_at(NAME_LEN);
            let name: [u8; NAME_LEN] = name.try_into().ok()?;
            let mut cipher_key = [0u8; 32];
            Salt::new(HKDF_SHA256, &name)
                .extract(secret)
                .expand(&[b"gatehouse session ticket key"], Len(cipher_key.len()))
                .ok()?
                .fill(&mut cipher_key)
                .ok()?;
            let cipher = RandomizedNonceKey::new(&AES_256_GCM, &cipher_key).ok()?;
            Some(TicketKey { name, cipher })
        })
        .collect()
}

/// An output length for HKDF.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Vec<u8> {
        (0..KEY_LEN as u8)
            .map(|i| i.wrapping_mul(31) ^ byte)
            .collect()
    }

    fn ticketer(bytes: &[u8]) -> FileTicketer {
        FileTicketer {
            path: PathBuf::from("tickets.key"),
            keys: ArcSwap::from_pointee(parse_keys(bytes).expect("keys")),
        }
    }

    #[test]
    fn a_ticket_sealed_by_one_instance_opens_on_another_with_the_same_file() {
        let a = ticketer(&key(1));
        let b = ticketer(&key(1));
        let ticket = a.encrypt(b"session state").expect("sealed");
        assert_eq!(b.decrypt(&ticket).as_deref(), Some(&b"session state"[..]));
        assert!(!ticket.windows(13).any(|w| w == b"session state"));
    }

    #[test]
    fn after_a_rotation_the_previous_key_still_opens_and_the_new_one_seals() {
        let old = ticketer(&key(1));
        let ticket = old.encrypt(b"state").expect("sealed");
        let rotated = ticketer(&[key(2), key(1)].concat());
        assert_eq!(rotated.decrypt(&ticket).as_deref(), Some(&b"state"[..]));
        let fresh = rotated.encrypt(b"state").expect("sealed");
        assert_eq!(
            &fresh[..NAME_LEN],
            &key(2)[..NAME_LEN],
            "sealed with the newest key"
        );
        assert!(ticketer(&key(3)).decrypt(&fresh).is_none(), "unknown key");
    }

    #[test]
    fn tampered_short_and_foreign_tickets_are_refused_without_panic() {
        let t = ticketer(&key(1));
        let mut ticket = t.encrypt(b"state").expect("sealed");
        for cut in 0..ticket.len() {
            assert!(t.decrypt(&ticket[..cut]).is_none());
        }
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert!(t.decrypt(&ticket).is_none());
    }

    #[test]
    fn files_of_the_wrong_size_are_refused() {
        for len in [0, 1, 79, 81, 159, KEY_LEN * (MAX_KEYS + 1)] {
            assert!(parse_keys(&vec![7u8; len]).is_none(), "{len} bytes");
        }
        assert_eq!(parse_keys(&[7u8; 160]).map(|k| k.len()), Some(2));
    }
}
