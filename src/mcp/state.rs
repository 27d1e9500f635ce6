//! Integrity protection for `requestState` (2026-07-28 `InputRequiredResult`).
//!
//! A handler's state travels through the client and comes back on the
//! retried request; the client must not be able to forge or alter it, nor
//! move it to another tool. The server signs `binding || state` with
//! HMAC-SHA256 under a key drawn from the OS CSPRNG when the server is
//! built (so state does not survive a restart), or under keys the host
//! gives every replica alike ([`StateKeys`]: the first seals, any opens,
//! so a key can be rotated without breaking rounds in flight), and checks
//! the tag in constant time. Wire form: `base64url(state) "." base64url(tag)`.

use crate::util::constant_time_eq;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// SHA-256's block size, the HMAC key pad length.
const BLOCK: usize = 64;

/// The keys request state is sealed with: the first seals, every one opens.
pub(crate) struct StateKeys(Vec<StateKey>);

impl std::fmt::Debug for StateKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateKeys({} keys)", self.0.len())
    }
}

impl StateKeys {
    /// One fresh random key (state does not outlive the process).
    pub(crate) fn random() -> StateKeys {
        StateKeys(vec![StateKey::random()])
    }

    /// The host's keys (at least one: none gives a random one).
    pub(crate) fn given(keys: &[[u8; 32]]) -> StateKeys {
        if keys.is_empty() {
            return StateKeys::random();
        }
        StateKeys(keys.iter().map(|k| StateKey(*k)).collect())
    }

    /// [`StateKey::seal`] with the first key.
    pub(crate) fn seal(&self, binding: &str, state: &str) -> String {
        match self.0.first() {
            Some(key) => key.seal(binding, state),
            None => StateKey::random().seal(binding, state),
        }
    }

    /// [`StateKey::open`] with each key in turn.
    pub(crate) fn open(&self, binding: &str, sealed: &str) -> Option<String> {
        self.0.iter().find_map(|key| key.open(binding, sealed))
    }
}

/// A signing key for request state.
pub(crate) struct StateKey([u8; 32]);

impl std::fmt::Debug for StateKey {
    // The key is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    /// A fresh random key (all zeros only if the OS has no randomness, which
    /// `getrandom` reports; then state is still checked, just not secret).
    pub(crate) fn random() -> StateKey {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            tracing::error!("no OS randomness for the requestState key");
        }
        StateKey(key)
    }

    fn tag(&self, binding: &str, state: &[u8]) -> [u8; 32] {
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for (i, k) in self.0.iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let mut inner = Sha256::new();
        inner.update(ipad);
        inner.update((binding.len() as u64).to_be_bytes());
        inner.update(binding.as_bytes());
        inner.update(state);
        let inner = inner.finalize();
        let mut outer = Sha256::new();
        outer.update(opad);
        outer.update(inner);
        outer.finalize().into()
    }

    /// The wire form of `state`, bound to `binding` (the tool, prompt or URI).
    pub(crate) fn seal(&self, binding: &str, state: &str) -> String {
        let tag = self.tag(binding, state.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(state),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The state inside `sealed`, if its tag is right for `binding`.
    pub(crate) fn open(&self, binding: &str, sealed: &str) -> Option<String> {
        let (body, tag) = sealed.split_once('.')?;
        let state = URL_SAFE_NO_PAD.decode(body).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let expected = self.tag(binding, &state);
        if !constant_time_eq(&tag, &expected) {
            return None;
        }
        String::from_utf8(state).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_state_opens_only_unchanged_and_for_its_binding() {
        let key = StateKey::random();
        let sealed = key.seal("tool:a", "round-1");
        assert_eq!(key.open("tool:a", &sealed).as_deref(), Some("round-1"));
        assert_eq!(key.open("tool:b", &sealed), None);
        assert_eq!(key.open("tool:a", &format!("{sealed}-TAMPERED")), None);
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("round-9"),
            sealed.split_once('.').map(|s| s.1).unwrap_or("")
        );
        assert_eq!(key.open("tool:a", &forged), None);
        assert_eq!(StateKey::random().open("tool:a", &sealed), None);
        assert_eq!(key.open("tool:a", "no-dot"), None);
    }

    #[test]
    fn shared_keys_rotate_without_breaking_rounds_in_flight() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let replica_a = StateKeys::given(&[old]);
        let sealed_old = replica_a.seal("tool:a", "round-1");
        // Another replica with the same key opens it.
        let replica_b = StateKeys::given(&[old]);
        assert_eq!(
            replica_b.open("tool:a", &sealed_old).as_deref(),
            Some("round-1")
        );
        // Rotated: the new key seals, the old one still opens.
        let rotated = StateKeys::given(&[new, old]);
        assert_eq!(
            rotated.open("tool:a", &sealed_old).as_deref(),
            Some("round-1")
        );
        let sealed_new = rotated.seal("tool:a", "round-2");
        assert_eq!(
            replica_b.open("tool:a", &sealed_new),
            None,
            "the old set lacks the new key"
        );
        assert_eq!(
            StateKeys::given(&[new])
                .open("tool:a", &sealed_new)
                .as_deref(),
            Some("round-2")
        );
        // Retired: the old key no longer opens.
        assert_eq!(StateKeys::given(&[new]).open("tool:a", &sealed_old), None);
        assert!(
            !format!("{rotated:?}").contains("1, 1"),
            "no key material in Debug"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2_shape() {
        // RFC 4231 test case 2 uses a 4-byte key; ours is 32 bytes, so check
        // the construction on a key padded the same way HMAC pads it.
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(b"Jefe");
        let key = StateKey(k);
        // binding "" contributes only its 8-byte length prefix; compare with
        // a direct HMAC over that same message.
        let msg = [&0u64.to_be_bytes()[..], b"what do ya want for nothing?"].concat();
        let tag = key.tag("", b"what do ya want for nothing?");
        let expected = {
            let mut ipad = [0x36u8; BLOCK];
            let mut opad = [0x5cu8; BLOCK];
            for i in 0..4 {
                ipad[i] ^= k[i];
                opad[i] ^= k[i];
            }
            let inner = Sha256::new()
                .chain_update(ipad)
                .chain_update(&msg)
                .finalize();
            let out: [u8; 32] = Sha256::new()
                .chain_update(opad)
                .chain_update(inner)
                .finalize()
                .into();
            out
        };
        assert_eq!(tag, expected);
        // And the plain RFC vector, message without the length prefix.
        let plain = {
            let mut ipad = [0x36u8; BLOCK];
            let mut opad = [0x5cu8; BLOCK];
            for i in 0..4 {
                ipad[i] ^= k[i];
                opad[i] ^= k[i];
            }
            let inner = Sha256::new()
                .chain_update(ipad)
                .chain_update(b"what do ya want for nothing?")
                .finalize();
            let out: [u8; 32] = Sha256::new()
                .chain_update(opad)
                .chain_update(inner)
                .finalize()
                .into();
            out
        };
        let hex: String = plain.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
