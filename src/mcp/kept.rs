//! Text a call keeps from its request (its id, its arguments, the
//! client's `clientInfo` and capabilities): copied out of the request
//! together into one shared allocation, each piece a range of it, rather
//! than into an allocation of its own each.

use std::sync::Arc;

/// Pieces that lie close together in their message (within this many
/// bytes, or twice their own length) are kept as that one stretch of it: a
/// single copy, and no second pass over the text. Default: 1 KiB.
const KEPT_STRETCH: usize = 1024;

/// One piece of a call's kept text. Clones share the allocation.
#[derive(Clone)]
pub(crate) struct Kept {
    whole: Arc<str>,
    start: usize,
    end: usize,
}

impl Kept {
    /// Copies `pieces` (slices of `message`) into one allocation; each
    /// `Some` comes back as a [`Kept`] of it, in the same place.
    pub(crate) fn copy<const N: usize>(
        message: &str,
        pieces: [Option<&str>; N],
    ) -> [Option<Kept>; N] {
        // The stretch of `message` the pieces lie in, if they all do.
        let base = message.as_ptr() as usize;
        let (mut lo, mut hi, mut total, mut all_in) = (usize::MAX, 0, 0, true);
        let mut any = false;
        for piece in pieces.iter().flatten() {
            any = true;
            let start = (piece.as_ptr() as usize).wrapping_sub(base);
            let end = start.wrapping_add(piece.len());
            all_in &= start <= end && end <= message.len();
            (lo, hi, total) = (lo.min(start), hi.max(end), total + piece.len());
        }
        if !any {
            // Nothing to keep: no allocation.
            return pieces.map(|_| None);
        }
        let stretch = message
            .get(lo..hi)
            .filter(|s| all_in && s.len() <= KEPT_STRETCH.max(total.saturating_mul(2)));
        if let Some(stretch) = stretch {
            let whole: Arc<str> = Arc::from(stretch);
            let from = base + lo;
            return pieces.map(|piece| {
                piece.map(|piece| {
                    let start = piece.as_ptr() as usize - from;
                    Kept {
                        whole: Arc::clone(&whole),
                        start,
                        end: start + piece.len(),
                    }
                })
            });
        }
        // Far apart (or not in `message`): gathered end to end.
        let mut gathered = String::with_capacity(total);
        for piece in pieces.iter().flatten() {
            gathered.push_str(piece);
        }
        let whole: Arc<str> = Arc::from(gathered);
        let mut next = 0;
        pieces.map(|piece| {
            piece.map(|piece| {
                let start = next;
                next += piece.len();
                Kept {
                    whole: Arc::clone(&whole),
                    start,
                    end: next,
                }
            })
        })
    }

    /// One piece on its own.
    pub(crate) fn one(piece: &str) -> Kept {
        Kept {
            whole: Arc::from(piece),
            start: 0,
            end: piece.len(),
        }
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        // Always a whole piece of `whole`; "" only if that ever broke.
        self.whole.get(self.start..self.end).unwrap_or_default()
    }
}

impl std::ops::Deref for Kept {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Kept {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Kept {
    fn eq(&self, other: &Kept) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Kept {}

impl std::hash::Hash for Kept {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, so a map keyed by `Kept` is searched by `&str`.
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each piece comes back whole; true when they share one allocation.
    fn check<const N: usize>(message: &str, pieces: [Option<&str>; N]) -> [Option<Kept>; N] {
        let kept = Kept::copy(message, pieces);
        for (piece, kept) in pieces.iter().zip(&kept) {
            assert_eq!(piece.is_some(), kept.is_some());
            if let (Some(p), Some(k)) = (piece, kept) {
                assert_eq!(*p, k.as_str());
            }
        }
        let mut kept_ones = kept.iter().flatten();
        if let Some(first) = kept_ones.next() {
            assert!(kept_ones.all(|k| Arc::ptr_eq(&first.whole, &k.whole)));
        }
        kept
    }

    #[test]
    fn close_pieces_are_kept_as_their_stretch_of_the_message() {
        let message = r#"{"id":"é7","params":{"arguments":{"q":"ü"},"_meta":{"c":{}}}}"#;
        let slice = |text: &str| {
            let at = message.find(text).expect("in the message");
            &message[at..at + text.len()]
        };
        let (id, args, caps) = (slice(r#""é7""#), slice(r#"{"q":"ü"}"#), slice("{}}}}"));
        let caps = &caps[..2];
        let [Some(kept_id), None, Some(_), Some(_)] =
            check(message, [Some(id), None, Some(args), Some(caps)])
        else {
            panic!("pieces lost");
        };
        // The stretch from the id to the capabilities, not the whole message.
        let stretch = caps.as_ptr() as usize + caps.len() - id.as_ptr() as usize;
        assert_eq!(kept_id.whole.len(), stretch);
        assert!(stretch < message.len());
    }

    #[test]
    fn far_or_foreign_pieces_are_gathered_end_to_end() {
        let filler = "x".repeat(4 * KEPT_STRETCH);
        let message = format!(r#"{{"id":1,"pad":"{filler}","arguments":{{}}}}"#);
        let id = &message[6..7];
        let args_at = message.len() - 3;
        let args = &message[args_at..args_at + 2];
        let [Some(kept_id), Some(_)] = check(&message, [Some(id), Some(args)]) else {
            panic!("pieces lost");
        };
        assert_eq!(kept_id.whole.len(), 3, "the padding between is not kept");
        // A piece from another string: gathered, whatever the message.
        let other = String::from("\"elsewhere\"");
        check(&message, [Some(id), Some(other.as_str()), None]);
        check("", [Some(other.as_str())]);
        check(&message, [None, None]);
        assert_eq!(Kept::one("\"a\"").as_str(), "\"a\"");
    }

    #[test]
    fn no_pieces_keep_nothing() {
        let kept = Kept::copy(r#"{"id":1}"#, [None, None, None]);
        assert!(kept.iter().all(Option::is_none));
    }

    #[test]
    fn a_map_keyed_by_kept_is_searched_by_str() {
        let mut map = std::collections::HashMap::new();
        map.insert(Kept::one("\"call-1\""), 1);
        assert_eq!(map.get("\"call-1\""), Some(&1));
        assert_eq!(map.remove("\"call-1\""), Some(1));
    }
}
