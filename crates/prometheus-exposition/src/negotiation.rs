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
    /// Two choices of ours: a range with q=0 is refused rather than ranked
    /// last, and when no range names a format (no `Accept`, `*/*`, a browser)
    /// the answer is the 0.0.4 text format, as plain `curl` always got.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let mut ranges: Vec<MediaRange> = accept
            .unwrap_or_default()
            .split(',')
            .filter_map(MediaRange::parse)
            .filter(|range| range.q > 0.0)
            .collect();
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
                return Self { format, escaping };
            }
        }
        Self {
            format: Format::Text,
            escaping,
        }
    }
}

/// One media range of `Accept`, parsed as Go's goautoneg does: type and
/// subtype (`*` alone is `*/*`), `key=value` parameters with white space
/// trimmed, and `q` (1 when absent, 0 when it does not parse). Type, subtype
/// and parameter names are compared case-insensitively, as HTTP says.
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
                range.q = value.parse().unwrap_or(0.0);
            } else {
                range.params.push((key, value.to_string()));
            }
        }
        Some(range)
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A q-value of `Accept-Encoding`: 1 when absent, 0 when it does not parse
/// (a malformed coding is not an acceptable one).
fn quality(q: Option<&str>) -> f32 {
    match q {
        None => 1.0,
        Some(q) => q.trim().parse().unwrap_or(0.0),
    }
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
            .map_or(1.0, |q| quality(Some(q)));
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
            // A q-value that does not parse is 0.
            (Some("application/openmetrics-text;version=1.0.0;q=high,text/plain"), Text),
        ];
        for (accept, expected) in cases {
            assert_eq!(
                Negotiated::from_accept(accept).format,
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
                Negotiated::from_accept(accept).content_type(),
                expected,
                "Accept: {accept:?}"
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
        ];
        for (accept_encoding, expected) in cases {
            assert_eq!(
                accepts_gzip(accept_encoding),
                expected,
                "Accept-Encoding: {accept_encoding:?}"
            );
        }
    }
}
