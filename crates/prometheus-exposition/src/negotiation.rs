//! Which format and compression a scrape is answered in, as client_golang's
//! `expfmt.NegotiateIncludingOpenMetrics` and promhttp decide it from the
//! request's `Accept` and `Accept-Encoding` headers.

/// An exposition format the endpoint can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The text format, version 0.0.4: the default.
    Text,
    /// OpenMetrics text, version 1.0.0.
    OpenMetrics,
    /// OpenMetrics text under its pre-1.0 version name, 0.0.1 (what an
    /// `Accept` of OpenMetrics without a version asks for): the same body.
    OpenMetricsV001,
    /// The length-delimited protobuf format.
    Protobuf,
}

impl Format {
    /// The `Content-Type` of this format, without the escaping parameter.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::OpenMetricsV001 => "application/openmetrics-text; version=0.0.1; charset=utf-8",
            Format::Protobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            }
        }
    }

    /// A short name for the logs.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::OpenMetrics | Format::OpenMetricsV001 => "openmetrics",
            Format::Protobuf => "protobuf",
        }
    }

    /// The format that a media range of `Accept` names, if we serve it:
    /// protobuf with `proto=io.prometheus.client.MetricFamily;
    /// encoding=delimited`, OpenMetrics 1.0.0 or 0.0.1 (no version means
    /// 0.0.1), or `text/plain` version 0.0.4 (or no version).
    fn named_by(range: &MediaRange) -> Option<Self> {
        let version = range.param("version");
        match (range.type_.as_str(), range.subtype.as_str()) {
            ("application", "vnd.google.protobuf")
                if range.param("proto") == Some("io.prometheus.client.MetricFamily")
                    && range.param("encoding") == Some("delimited") =>
            {
                Some(Format::Protobuf)
            }
            ("application", "openmetrics-text") => match version {
                Some("1.0.0") => Some(Format::OpenMetrics),
                None | Some("0.0.1") => Some(Format::OpenMetricsV001),
                _ => None,
            },
            ("text", "plain") if matches!(version, None | Some("0.0.4")) => Some(Format::Text),
            _ => None,
        }
    }
}

/// How names that are not valid in the legacy character set are escaped, from
/// the `escaping` parameter of `Accept` (Prometheus 3 sends `allow-utf-8`).
///
/// The prometheus crate only accepts legacy names, so no scheme changes a
/// byte of the body; the scheme is echoed in the `Content-Type`, as expfmt
/// does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// `allow-utf-8`: no escaping.
    AllowUtf8,
    /// `underscores`: expfmt's default.
    Underscores,
    /// `dots`.
    Dots,
    /// `values`.
    Values,
}

impl Escaping {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "allow-utf-8" => Some(Escaping::AllowUtf8),
            "underscores" => Some(Escaping::Underscores),
            "dots" => Some(Escaping::Dots),
            "values" => Some(Escaping::Values),
            _ => None,
        }
    }

    /// The parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Escaping::AllowUtf8 => "allow-utf-8",
            Escaping::Underscores => "underscores",
            Escaping::Dots => "dots",
            Escaping::Values => "values",
        }
    }
}

/// The outcome of negotiating `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The format of the body.
    pub format: Format,
    /// The escaping scheme echoed in the `Content-Type`.
    pub escaping: Escaping,
}

impl Negotiated {
    /// The `Content-Type` of the answer, as expfmt writes it: the format's
    /// media type and `; escaping=<scheme>`.
    pub fn content_type(self) -> String {
        format!(
            "{}; escaping={}",
            self.format.media_type(),
            self.escaping.as_str()
        )
    }

    /// The format and escaping that the `Accept` header prefers, as expfmt's
    /// `NegotiateIncludingOpenMetrics` picks them: the media ranges by
    /// decreasing q-value (ties keep their order, specific before wildcard),
    /// and the first that names a format we serve wins ([`Format::named_by`]).
    /// Every range looked at on the way that carries a known `escaping` sets
    /// the scheme (default `underscores`); unknown schemes are ignored.
    ///
    /// Choices of ours: a range with q=0 is refused rather than ranked last;
    /// a range whose q is not an RFC 9110 qvalue (0 to 1, at most three
    /// decimals: `q=2`, `q=inf`, `q=high`) is ignored; when no range names a
    /// format (no `Accept`, `*/*`, a browser) the answer is the 0.0.4 text
    /// format, as plain `curl` always got, unless a range with q=0 refuses
    /// it (`text/plain;q=0`, `text/*;q=0`, `*/*;q=0`): then nothing we serve
    /// is acceptable, and the answer is `None` (406 Not Acceptable).
    pub fn from_accept(accept: Option<&str>) -> Option<Self> {
        let (mut ranges, refused): (Vec<MediaRange>, Vec<MediaRange>) = accept
            .unwrap_or_default()
            .split(',')
            .filter_map(MediaRange::parse)
            .partition(|range| range.q > 0.0);
        ranges.sort_by(|a, b| {
            b.q.total_cmp(&a.q)
                .then((a.type_ == "*").cmp(&(b.type_ == "*")))
                .then((a.subtype == "*").cmp(&(b.subtype == "*")))
        });
        let mut escaping = Escaping::Underscores;
        for range in &ranges {
            if let Some(scheme) = range.param("escaping").and_then(Escaping::parse) {
                escaping = scheme;
            }
            if let Some(format) = Format::named_by(range) {
                return Some(Self { format, escaping });
            }
        }
        if refused.iter().any(MediaRange::covers_text) {
            return None;
        }
        Some(Self {
            format: Format::Text,
            escaping,
        })
    }
}

/// One media range of `Accept`, parsed as Go's goautoneg does: type and
/// subtype (`*` alone is `*/*`), `key=value` parameters with white space
/// trimmed and a quoted value unquoted (`version="1.0.0"`), and `q` (1 when
/// absent). A range whose q is not a qvalue is dropped. Type, subtype and
/// parameter names are compared case-insensitively, as HTTP says.
struct MediaRange {
    type_: String,
    subtype: String,
    params: Vec<(String, String)>,
    q: f32,
}

impl MediaRange {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(';');
        let media = parts.next()?.trim().to_ascii_lowercase();
        let (type_, subtype) = match media.split_once('/') {
            Some((type_, subtype)) if !type_.is_empty() && !subtype.is_empty() => {
                (type_.trim().to_string(), subtype.trim().to_string())
            }
            None if media == "*" => ("*".to_string(), "*".to_string()),
            _ => return None,
        };
        let mut range = Self {
            type_,
            subtype,
            params: Vec::new(),
            q: 1.0,
        };
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            if key == "q" {
                range.q = qvalue(value)?;
            } else {
                range.params.push((key, unquote(value)));
            }
        }
        Some(range)
    }

    /// Whether this range names the 0.0.4 text format or a wildcard over it.
    fn covers_text(&self) -> bool {
        match (self.type_.as_str(), self.subtype.as_str()) {
            ("*", _) | ("text", "*") => true,
            _ => Format::named_by(self) == Some(Format::Text),
        }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The value of a quoted-string parameter without its quotes and escapes,
/// or the token as it is.
fn unquote(value: &str) -> String {
    let Some(inner) = value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return value.to_string();
    };
    let mut unquoted = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        unquoted.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    unquoted
}

/// A qvalue as RFC 9110 (section 12.4.2) spells it: `0` to `1` with at most
/// three decimals (`0`, `0.5`, `1.000`); anything else (`2`, `inf`, `-1`,
/// `0.0001`, `high`) is not one.
fn qvalue(text: &str) -> Option<f32> {
    let (whole, decimals) = text.split_once('.').unwrap_or((text, ""));
    let valid = decimals.len() <= 3
        && decimals.bytes().all(|b| b.is_ascii_digit())
        && match whole {
            "0" => true,
            "1" => decimals.bytes().all(|b| b == b'0'),
            _ => false,
        };
    valid.then(|| text.parse().ok()).flatten()
}

/// Whether `Accept-Encoding` allows gzip: `gzip` with a q-value above 0, or
/// `*` above 0 when gzip is not named.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let mut gzip = None;
    let mut any = None;
    for coding in accept_encoding.unwrap_or_default().split(',') {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .find_map(|param| {
                let (key, value) = param.split_once('=')?;
                key.trim().eq_ignore_ascii_case("q").then_some(value)
            })
            // A malformed qvalue is not an acceptable coding.
            .map_or(1.0, |q| qvalue(q.trim()).unwrap_or(0.0));
        match name.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q),
            "*" => any = Some(q),
            _ => {}
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    const PROMETHEUS_2_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
    const PROMETHEUS_2_42_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const PROMETHEUS_2_CLASSIC: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const PROTOBUF: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

    #[test]
    fn negotiation_follows_the_q_values_of_the_accept_header() {
        use Format::*;
        let cases = [
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Text),
            (Some("*"), Text),
            (Some("text/plain"), Text),
            (Some("TEXT/Plain; Version=0.0.4"), Text),
            (Some(PROMETHEUS_3), OpenMetrics),
            (Some(PROMETHEUS_2_NATIVE), Protobuf),
            (Some(PROMETHEUS_2_42_NATIVE), Protobuf),
            (Some(PROMETHEUS_2_CLASSIC), OpenMetrics),
            (Some("application/openmetrics-text"), OpenMetricsV001),
            (Some("application/openmetrics-text; version=0.0.1"), OpenMetricsV001),
            // A version we do not speak is not named: the next range wins.
            (Some("application/openmetrics-text;version=2.0.0,application/openmetrics-text;version=1.0.0;q=0.1"), OpenMetrics),
            // OpenMetrics preferred by its q-value, though named second.
            (Some("text/plain;q=0.5,application/openmetrics-text;version=1.0.0;q=0.9"), OpenMetrics),
            // q=0 refuses a format; one q-value above another wins.
            (Some("application/openmetrics-text;version=1.0.0;q=0,text/plain;q=0.1"), Text),
            (Some("application/openmetrics-text;version=1.0.0;q=0.001,text/plain;q=0"), OpenMetrics),
            // Text preferred by its q-value, though named second.
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.2,text/plain;version=0.0.4;q=0.9"), Text),
            // Equal q-values: the first named wins.
            (Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited, text/plain"), Protobuf),
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0"), Text),
            // Not the delimited encoding, or not MetricFamily: not something we serve.
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"), Text),
            (Some("application/vnd.google.protobuf;proto=other.Message;encoding=delimited"), Text),
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.4,text/plain;version=1.0.0;q=0.9"), Protobuf),
            (Some("garbage;;;,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"), Protobuf),
            // A range whose q is not a qvalue is ignored: not `q=high`,
            // nor above 1, nor four decimals.
            (Some("application/openmetrics-text;version=1.0.0;q=high,text/plain"), Text),
            (Some("text/plain;q=1,application/openmetrics-text;version=1.0.0;q=2"), Text),
            (Some("text/plain;q=0.9,application/openmetrics-text;version=1.0.0;q=inf"), Text),
            (Some("text/plain;q=0.9,application/openmetrics-text;version=1.0.0;q=1.0001"), Text),
            (Some("text/plain;q=0.9,application/openmetrics-text;version=1.0.0;q=0.0001"), Text),
            (Some("text/plain;q=0.9,application/openmetrics-text;version=1.0.0;q=-1"), Text),
            // The largest qvalues are kept: 1.000 and 0.999 both outrank 0.998.
            (Some("text/plain;q=0.998,application/openmetrics-text;version=1.0.0;q=1.000"), OpenMetrics),
            (Some("text/plain;q=0.998,application/openmetrics-text;version=1.0.0;q=0.999"), OpenMetrics),
            (Some("text/plain;q=0.999,application/openmetrics-text;version=1.0.0;q=0.998"), Text),
            // A quoted parameter value is the value.
            (Some("application/openmetrics-text; version=\"1.0.0\""), OpenMetrics),
            (Some("application/vnd.google.protobuf;proto=\"io.prometheus.client.MetricFamily\";encoding=\"delimited\""), Protobuf),
            (Some("text/plain;q=0.5,application/openmetrics-text;version=\"2.0.0\""), Text),
        ];
        for (accept, expected) in cases {
            assert_eq!(
                Negotiated::from_accept(accept).unwrap().format,
                expected,
                "Accept: {accept:?}"
            );
        }
    }

    #[test]
    fn the_escaping_parameter_is_echoed_as_expfmt_echoes_it() {
        let html_then_protobuf =
            format!("text/html;escaping=dots,{PROTOBUF};escaping=allow-utf-8;q=0.5");
        let protobuf_then_text = format!("{PROTOBUF},text/plain;escaping=dots;q=0.5");
        let cases = [
            (None, "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"),
            (Some(PROMETHEUS_3), "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"),
            (Some(PROMETHEUS_2_CLASSIC), "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"),
            (Some(PROMETHEUS_2_NATIVE), "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"),
            (Some("text/plain;escaping=dots"), "text/plain; version=0.0.4; charset=utf-8; escaping=dots"),
            (Some("*/*;escaping=values"), "text/plain; version=0.0.4; charset=utf-8; escaping=values"),
            // Unknown schemes are ignored.
            (Some("text/plain;escaping=bogus"), "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"),
            // A preferred range that names no format still sets the scheme.
            (Some("text/plain;version=1.0.0;escaping=allow-utf-8,text/plain;version=0.0.4;q=0.3"), "text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8"),
            // The winning range's own scheme is the last one set.
            (Some(html_then_protobuf.as_str()), "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=allow-utf-8"),
            (Some("text/html;escaping=dots,text/plain;escaping=underscores"), "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"),
            // Ranges below the winner do not count.
            (Some(protobuf_then_text.as_str()), "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"),
            // On equal q-values a specific range is looked at before a
            // wildcard: `text/plain` wins before `text/*` sets a scheme, and
            // `*/*` sets its scheme after `text/*`.
            (Some("text/*;escaping=dots,text/plain"), "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"),
            (Some("*/*;escaping=dots,text/*;escaping=values"), "text/plain; version=0.0.4; charset=utf-8; escaping=dots"),
            // `*` alone is `*/*`; a range without a type or a subtype is dropped.
            (Some("*;escaping=values"), "text/plain; version=0.0.4; charset=utf-8; escaping=values"),
            (Some("garbage;escaping=dots"), "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"),
            (Some("text/;escaping=dots"), "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"),
            (Some("/plain;escaping=dots"), "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"),
        ];
        for (accept, expected) in cases {
            assert_eq!(
                Negotiated::from_accept(accept).unwrap().content_type(),
                expected,
                "Accept: {accept:?}"
            );
        }
    }

    #[test]
    fn nothing_is_acceptable_when_a_range_with_q_0_refuses_the_text_format() {
        for accept in [
            "text/plain;q=0",
            "text/plain;version=0.0.4;q=0",
            "TEXT/PLAIN; Q=0.000",
            "text/*;q=0",
            "*/*;q=0",
            "*;q=0",
            "application/json,text/plain;q=0",
            "application/openmetrics-text;version=1.0.0;q=0,text/plain;q=0",
        ] {
            assert_eq!(
                Negotiated::from_accept(Some(accept)),
                None,
                "Accept: {accept}"
            );
        }
        // Refusing text while naming another format, or refusing other
        // formats only, leaves a format to answer in.
        let cases = [
            (format!("text/plain;q=0,{PROTOBUF}"), Format::Protobuf),
            (
                "*/*;q=0,application/openmetrics-text".to_string(),
                Format::OpenMetricsV001,
            ),
            (
                "text/plain;q=0,text/plain;version=0.0.4;q=0.5".to_string(),
                Format::Text,
            ),
            ("text/plain;version=1.0.0;q=0".to_string(), Format::Text),
            ("text/html;q=0".to_string(), Format::Text),
            (format!("{PROTOBUF};q=0"), Format::Text),
        ];
        for (accept, expected) in cases {
            assert_eq!(
                Negotiated::from_accept(Some(&accept)).map(|n| n.format),
                Some(expected),
                "Accept: {accept}"
            );
        }
    }

    #[test]
    fn gzip_is_used_when_accept_encoding_allows_it() {
        let cases = [
            (None, false),
            (Some(""), false),
            (Some("gzip"), true),
            (Some("GZIP"), true),
            (Some("deflate, gzip;q=0.5"), true),
            (Some("gzip; q=0"), false),
            (Some("gzip;q=0.000"), false),
            (Some("br, deflate"), false),
            (Some("identity"), false),
            (Some("*"), true),
            (Some("*;q=0"), false),
            (Some("gzip;q=0, *"), false),
            // A qvalue that is not one (above 1, four decimals) refuses gzip.
            (Some("gzip;q=2"), false),
            (Some("gzip;q=0.0001"), false),
            (Some("gzip;q=0.001"), true),
            (Some("gzip; q=1.000"), true),
        ];
        for (accept_encoding, expected) in cases {
            assert_eq!(
                accepts_gzip(accept_encoding),
                expected,
                "Accept-Encoding: {accept_encoding:?}"
            );
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::{super::*, PROTOBUF};

        /// A media range as the test writes it: its text without q, the
        /// format it names (by the rules of docs/metrics.md, written out
        /// here), and whether it is a wildcard over the text format.
        fn media() -> impl Strategy<Value = (String, Option<Format>, bool)> {
            let version = |v: &'static str| {
                prop_oneof![
                    Just(format!(";version={v}")),
                    Just(format!("; version=\"{v}\""))
                ]
            };
            prop_oneof![
                Just(("text/plain".to_string(), Some(Format::Text), false)),
                version("0.0.4").prop_map(|v| (
                    format!("text/plain{v}"),
                    Some(Format::Text),
                    false
                )),
                version("1.0.0").prop_map(|v| (format!("text/plain{v}"), None, false)),
                Just((
                    "application/openmetrics-text".to_string(),
                    Some(Format::OpenMetricsV001),
                    false
                )),
                version("0.0.1").prop_map(|v| (
                    format!("application/openmetrics-text{v}"),
                    Some(Format::OpenMetricsV001),
                    false
                )),
                version("1.0.0").prop_map(|v| (
                    format!("Application/OpenMetrics-Text{v}"),
                    Some(Format::OpenMetrics),
                    false
                )),
                version("2.0.0").prop_map(|v| (
                    format!("application/openmetrics-text{v}"),
                    None,
                    false
                )),
                Just((PROTOBUF.to_string(), Some(Format::Protobuf), false)),
                Just((
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily"
                        .to_string(),
                    None,
                    false
                )),
                Just(("text/*".to_string(), None, true)),
                Just(("*/*".to_string(), None, true)),
                Just(("*".to_string(), None, true)),
                Just(("text/html".to_string(), None, false)),
                Just(("application/json".to_string(), None, false)),
            ]
        }

        /// A q parameter: its text and its value, `None` when it is not an
        /// RFC 9110 qvalue (the range is then ignored).
        fn q() -> impl Strategy<Value = (String, Option<f32>)> {
            prop_oneof![
                Just((String::new(), Some(1.0))),
                prop::sample::select(vec![
                    ("0", 0.0),
                    ("0.0", 0.0),
                    ("0.000", 0.0),
                    ("0.001", 0.001),
                    ("0.25", 0.25),
                    ("0.5", 0.5),
                    ("0.999", 0.999),
                    ("1", 1.0),
                    ("1.0", 1.0),
                    ("1.000", 1.0),
                ])
                .prop_map(|(text, value)| (format!(";q={text}"), Some(value))),
                prop::sample::select(vec![
                    "2", "inf", "-1", "0.0001", "1.5", "1.001", "high", "", "NaN"
                ])
                .prop_map(|text| (format!(";q={text}"), None)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn the_format_is_the_first_named_with_the_highest_q_and_never_one_refused(
                ranges in prop::collection::vec((media(), q()), 0..6)
            ) {
                let accept = ranges
                    .iter()
                    .map(|((media, _, _), (q, _))| format!("{media}{q}"))
                    .collect::<Vec<_>>()
                    .join(",");
                // The model: ranges with a valid q above 0 that name a
                // format, the first of those with the highest q wins; else
                // text, unless a range with q=0 names or covers text.
                let mut best: Option<(f32, Format)> = None;
                for ((_, named, _), (_, q)) in &ranges {
                    if let (Some(format), Some(q)) = (named, q) {
                        if *q > 0.0 && best.is_none_or(|(best_q, _)| *q > best_q) {
                            best = Some((*q, *format));
                        }
                    }
                }
                let text_refused = ranges.iter().any(|((_, named, wildcard), (_, q))| {
                    *q == Some(0.0) && (*wildcard || *named == Some(Format::Text))
                });
                let expected = match best {
                    Some((_, format)) => Some(format),
                    None if text_refused => None,
                    None => Some(Format::Text),
                };
                prop_assert_eq!(
                    Negotiated::from_accept(Some(&accept)).map(|n| n.format),
                    expected,
                    "Accept: {}",
                    accept
                );
            }

            #[test]
            fn any_header_text_is_answered_without_panic(accept in ".{0,80}", encoding in ".{0,40}") {
                let negotiated = Negotiated::from_accept(Some(&accept));
                if let Some(negotiated) = negotiated {
                    prop_assert!(negotiated.content_type().starts_with(negotiated.format.media_type()));
                }
                accepts_gzip(Some(&encoding));
            }
        }
    }
}
