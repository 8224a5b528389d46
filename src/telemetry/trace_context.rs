//! W3C Trace Context: the trace id of a `/work` request, from its
//! `traceparent` header or new, and the `traceparent` its answer carries.
use std::cell::RefCell;

use poem::http::{HeaderName, HeaderValue};
pub use prometheus_exposition::TraceId;
use rand::{distr::StandardUniform, prelude::Distribution, rngs::SmallRng, Rng, SeedableRng};

/// The name of the header, in requests and answers.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Writes `bytes` as lowercase hex digits at the start of `out`.
// perf: by hand, not `write!("{:02x}")`: formatting the 55 bytes of a
// traceparent with `write!` cost about 1 µs per request (benches/README.md).
fn put_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

/// The trace context of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace the request belongs to.
    pub trace_id: TraceId,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// The context of a request with this `traceparent` header: its trace id
    /// and flags when the header is valid, else a new random trace id,
    /// sampled.
    pub fn from_header(traceparent: Option<&HeaderValue>) -> Self {
        traceparent
            .and_then(|value| Self::parse(value.as_bytes()))
            .unwrap_or_else(|| Self {
                trace_id: TraceId(random()),
                flags: 1,
            })
    }

    /// A `traceparent` (`00-<trace-id>-<parent-id>-<flags>`) as the W3C
    /// spec, level 1, reads it: version `00` has exactly four fields; a
    /// higher version may add fields after a `-` (`ff` is invalid); hex
    /// digits are lowercase; the trace id and the parent id are not all
    /// zeros.
    fn parse(header: &[u8]) -> Option<Self> {
        if header.len() < 55 || header[2] != b'-' || header[35] != b'-' || header[52] != b'-' {
            return None;
        }
        let version = hex::<1>(&header[0..2])?[0];
        if version == 0xff || (version == 0 && header.len() != 55) {
            return None;
        }
        if header.len() > 55 && header[55] != b'-' {
            return None;
        }
        let trace_id = hex::<16>(&header[3..35])?;
        let parent_id = hex::<8>(&header[36..52])?;
        let flags = hex::<1>(&header[53..55])?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id: TraceId(trace_id),
            flags,
        })
    }

    /// The `traceparent` of the answer: this trace, a new random parent id
    /// (the span of this request), the same flags.
    pub fn response_header(&self) -> HeaderValue {
        let span: [u8; 8] = random();
        let mut header = *b"00-________________________________-________________-__";
        put_hex(&mut header[3..35], &self.trace_id.0);
        put_hex(&mut header[36..52], &span);
        put_hex(&mut header[53..55], &[self.flags]);
        HeaderValue::from_bytes(&header).expect("hex digits and dashes")
    }
}

/// A `T` from a per-thread xoshiro generator seeded from `rand::rng()` (the
/// OS-seeded ChaCha one): trace and parent ids must be unique, not secret, as
/// OpenTelemetry's SDKs draw them.
// perf: `rand::random` (ChaCha12) cost about 60 ns per trace id (benches/README.md).
fn random<T>() -> T
where
    StandardUniform: Distribution<T>,
{
    thread_local! {
        static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
    }
    RNG.with_borrow_mut(|rng| rng.random())
}

/// `N` bytes from `2N` lowercase hex digits.
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(bytes)
}

/// The trace id in a `traceparent` header this service wrote.
pub fn trace_id_of(traceparent: &HeaderValue) -> Option<&str> {
    traceparent.to_str().ok()?.get(3..35)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parsed(header: &str) -> Option<String> {
        TraceContext::parse(header.as_bytes()).map(|c| format!("{} {:02x}", c.trace_id, c.flags))
    }

    #[test]
    fn a_valid_traceparent_gives_its_trace_id_and_flags() {
        assert_eq!(
            parsed(VALID).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736 01")
        );
        assert_eq!(
            parsed("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736 00")
        );
        // A future version may add fields.
        assert_eq!(
            parsed("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736 01")
        );
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for header in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(parsed(header), None, "{header:?}");
        }
    }

    #[test]
    fn a_missing_or_malformed_header_gets_a_new_random_sampled_trace() {
        let first = TraceContext::from_header(None);
        let second = TraceContext::from_header(Some(&HeaderValue::from_static("garbage")));
        assert_ne!(first.trace_id, second.trace_id);
        assert_ne!(first.trace_id, TraceId([0; 16]));
        assert_eq!((first.flags, second.flags), (1, 1));
    }

    #[test]
    fn the_answer_carries_the_trace_with_a_new_parent_id() {
        let context = TraceContext::from_header(Some(&HeaderValue::from_static(VALID)));
        let header = context.response_header();
        let text = header.to_str().unwrap();
        assert_eq!(text.len(), 55);
        assert_eq!(&text[..36], "00-4bf92f3577b34da6a3ce929d0e0e4736-");
        assert_ne!(&text[36..52], "00f067aa0ba902b7");
        assert_eq!(&text[52..], "-01");
        assert_eq!(parsed(text), parsed(VALID));
        assert_eq!(
            trace_id_of(&header),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn hex_of(bytes: &[u8]) -> String {
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }

        /// A valid traceparent, and the trace id and flags it carries.
        fn valid() -> impl Strategy<Value = (String, [u8; 16], u8)> {
            (
                0..=0xfe_u8,
                any::<[u8; 16]>().prop_filter("not all zeros", |id| *id != [0; 16]),
                any::<[u8; 8]>().prop_filter("not all zeros", |id| *id != [0; 8]),
                any::<u8>(),
                "[a-z0-9-]{0,20}",
            )
                .prop_map(|(version, trace_id, parent_id, flags, extra)| {
                    let mut header = format!(
                        "{version:02x}-{}-{}-{flags:02x}",
                        hex_of(&trace_id),
                        hex_of(&parent_id)
                    );
                    // Only a version above 00 may have more fields.
                    if version > 0 {
                        header = format!("{header}-{extra}");
                    }
                    (header, trace_id, flags)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn a_valid_traceparent_gives_its_trace_id_and_flags_and_the_answer_keeps_them(
                (header, trace_id, flags) in valid()
            ) {
                let parsed = TraceContext::parse(header.as_bytes());
                prop_assert_eq!(parsed, Some(TraceContext { trace_id: TraceId(trace_id), flags }));
                let answer = parsed.unwrap().response_header();
                prop_assert_eq!(TraceContext::parse(answer.as_bytes()), parsed);
            }

            #[test]
            fn a_valid_traceparent_broken_anywhere_gives_no_trace_id(
                (header, _, _) in valid(),
                at in 0..55_usize,
                byte in any::<u8>(),
            ) {
                // One byte of the 55 that every version has, made wrong for
                // its place: a dash where a dash must not be, else anything
                // but a lowercase hex digit (and `ff` for the version).
                let mut broken = header.into_bytes();
                let dash = [2, 35, 52].contains(&at);
                let wrong = if dash {
                    byte != b'-'
                } else {
                    !matches!(byte, b'0'..=b'9' | b'a'..=b'f')
                };
                prop_assume!(wrong);
                broken[at] = byte;
                prop_assert_eq!(TraceContext::parse(&broken), None);
            }

            #[test]
            fn a_traceparent_too_short_or_of_version_ff_or_00_with_more_gives_no_trace_id(
                (header, _, _) in valid(),
                cut in 0..55_usize,
                extra in "-[a-z0-9]{0,8}",
            ) {
                prop_assert_eq!(TraceContext::parse(&header.as_bytes()[..cut]), None);
                let ff = format!("ff{}", &header[2..]);
                prop_assert_eq!(TraceContext::parse(ff.as_bytes()), None);
                let v00 = format!("00{}{extra}", &header[2..55]);
                prop_assert_eq!(TraceContext::parse(v00.as_bytes()), None);
            }

            #[test]
            fn any_bytes_are_parsed_without_panic(header in prop::collection::vec(any::<u8>(), 0..80)) {
                let _ = TraceContext::parse(&header);
            }
        }
    }
}
