//! `GET /metrics`, as Go's `promhttp.Handler()` serves it: the format the
//! scraper's `Accept` header prefers (text or protobuf), gzip when its
//! `Accept-Encoding` allows it, an optional bearer token, and the handler's own
//! `promhttp_*` metrics.
use std::{io::Write, sync::OnceLock};

use flate2::{write::GzEncoder, Compression};
use poem::http::{header, HeaderMap};
use poem_openapi::{
    payload::{Binary, PlainText},
    ApiResponse, OpenApi, ResponseContent,
};
use prometheus::{
    proto::MetricFamily, Encoder, IntCounterVec, IntGauge, Opts, ProtobufEncoder, Registry,
    TextEncoder,
};

use crate::metrics_token::MetricsToken;

/// The `Content-Type` of the text exposition format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `Content-Type` of the protobuf exposition format (length-delimited
/// `io.prometheus.client.MetricFamily` messages).
pub const PROTOBUF_FORMAT: &str = prometheus::PROTOBUF_FORMAT;

/// The value of `Vary` on every exposition: both request headers change the answer.
pub const VARY: &str = "Accept-Encoding, Accept";

/// The status codes whose scrape counter exists, at 0, from the start, as in Go.
const PREINITIALIZED_CODES: [&str; 3] = ["200", "500", "503"];

/// An exposition format the endpoint can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The text format, version 0.0.4: the default.
    Text,
    /// The length-delimited protobuf format.
    Protobuf,
}

impl Format {
    /// The format that the `Accept` header prefers, as Go's `expfmt.Negotiate`
    /// picks it: the media ranges by decreasing q-value (ties keep their order),
    /// and the first that names protobuf (`proto=io.prometheus.client.MetricFamily;
    /// encoding=delimited`) or the text format (`text/plain`, version 0.0.4 or
    /// none) wins. Ranges with q=0 are refused; anything else, wildcards
    /// included, leads to the text format.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let mut ranges: Vec<(f32, mime::Mime)> = accept
            .unwrap_or_default()
            .split(',')
            .filter_map(|range| range.trim().parse::<mime::Mime>().ok())
            .map(|range| (quality(range.get_param("q").map(|q| q.as_str())), range))
            .filter(|(q, _)| *q > 0.0)
            .collect();
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranges
            .iter()
            .find_map(|(_, range)| Self::named_by(range))
            .unwrap_or(Format::Text)
    }

    fn named_by(range: &mime::Mime) -> Option<Self> {
        let param = |name: &str| range.get_param(name).map(|value| value.as_str().to_owned());
        match (range.type_().as_str(), range.subtype().as_str()) {
            ("application", "vnd.google.protobuf")
                if param("proto").as_deref() == Some("io.prometheus.client.MetricFamily")
                    && param("encoding").as_deref() == Some("delimited") =>
            {
                Some(Format::Protobuf)
            }
            ("text", "plain") if matches!(param("version").as_deref(), None | Some("0.0.4")) => {
                Some(Format::Text)
            }
            _ => None,
        }
    }

    /// A short name for the logs.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Protobuf => "protobuf",
        }
    }

    /// Encodes `families` in this format.
    pub fn encode(self, families: &[MetricFamily]) -> prometheus::Result<Vec<u8>> {
        let mut body = Vec::new();
        match self {
            Format::Text => TextEncoder::new().encode(families, &mut body)?,
            Format::Protobuf => ProtobufEncoder::new().encode(families, &mut body)?,
        }
        Ok(body)
    }
}

/// A q-value: 1 when absent, 0 when it does not parse (a malformed range is
/// not an acceptable one).
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

/// `body` compressed with gzip.
pub fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(body)?;
    encoder.finish()
}

/// The metrics endpoint's own metrics, named and described as Go's promhttp names them.
#[derive(Debug)]
pub struct ScrapeMetrics {
    requests: IntCounterVec,
    in_flight: IntGauge,
}

impl ScrapeMetrics {
    /// Creates the metrics and registers them in `registry`; the counters of
    /// 200, 500 and 503 start at 0.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "promhttp_metric_handler_requests_total",
                "Total number of scrapes by HTTP status code.",
            ),
            &["code"],
        )?;
        let in_flight = IntGauge::new(
            "promhttp_metric_handler_requests_in_flight",
            "Current number of scrapes being served.",
        )?;
        for code in PREINITIALIZED_CODES {
            requests.with_label_values(&[code]);
        }
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(Self {
            requests,
            in_flight,
        })
    }
}

static SCRAPE_METRICS: OnceLock<ScrapeMetrics> = OnceLock::new();

/// Registers the [`ScrapeMetrics`] of `GET /metrics` in `registry`, once per
/// process; later calls return the first ones.
pub fn init(registry: &Registry) -> prometheus::Result<&'static ScrapeMetrics> {
    if let Some(metrics) = SCRAPE_METRICS.get() {
        return Ok(metrics);
    }
    let metrics = ScrapeMetrics::register(registry)?;
    Ok(SCRAPE_METRICS.get_or_init(|| metrics))
}

/// The exposition in one of its formats.
#[derive(ResponseContent)]
pub enum Exposition {
    /// The text exposition format.
    #[oai(content_type = "text/plain; version=0.0.4; charset=utf-8")]
    Text(Binary<Vec<u8>>),
    /// Length-delimited `io.prometheus.client.MetricFamily` protobuf messages.
    #[oai(
        content_type = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    )]
    Protobuf(Binary<Vec<u8>>),
}

/// Answers of `GET /metrics`.
#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// Every metric of the default registry, in the text format unless the
    /// `Accept` header prefers protobuf; gzip-compressed when `Accept-Encoding`
    /// allows gzip.
    #[oai(status = 200)]
    Ok(
        Exposition,
        /// `gzip` when the body is compressed; absent otherwise.
        #[oai(header = "Content-Encoding")]
        Option<String>,
        /// `Accept-Encoding, Accept`: the answer depends on both.
        #[oai(header = "Vary")]
        String,
    ),
    /// The service runs with `--metrics-token-file` and the request lacks
    /// `Authorization: Bearer <token>` with that token.
    #[oai(status = 401)]
    Unauthorized(
        PlainText<&'static str>,
        /// `Bearer`.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// The metrics could not be encoded or compressed; the body says why.
    #[oai(status = 500)]
    Failed(PlainText<String>),
}

impl MetricsResponse {
    /// The exposition of `families` that `headers` ask for.
    pub fn exposition(families: &[MetricFamily], headers: &HeaderMap) -> Self {
        let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
        let format = Format::negotiate(header(header::ACCEPT));
        let compress = accepts_gzip(header(header::ACCEPT_ENCODING));
        let body = match format.encode(families) {
            Ok(body) => body,
            Err(err) => return Self::failed(format!("failed to encode metrics: {err}")),
        };
        let (body, encoding) = if compress {
            match gzip(&body) {
                Ok(compressed) => (compressed, Some("gzip".to_string())),
                Err(err) => return Self::failed(format!("failed to compress metrics: {err}")),
            }
        } else {
            (body, None)
        };
        tracing::debug!(
            format = format.name(),
            gzip = compress,
            bytes = body.len(),
            "metrics exposed"
        );
        let body = match format {
            Format::Text => Exposition::Text(Binary(body)),
            Format::Protobuf => Exposition::Protobuf(Binary(body)),
        };
        Self::Ok(body, encoding, VARY.to_string())
    }

    fn failed(reason: String) -> Self {
        tracing::error!(error = %reason, "failed to serve /metrics");
        Self::Failed(PlainText(reason))
    }

    fn unauthorized() -> Self {
        Self::Unauthorized(
            PlainText("a bearer token is required\n"),
            "Bearer".to_string(),
        )
    }

    /// The HTTP status code, as the scrape counter labels it.
    fn code(&self) -> u16 {
        match self {
            Self::Ok(..) => 200,
            Self::Unauthorized(..) => 401,
            Self::Failed(_) => 500,
        }
    }
}

/// The `/metrics` operation.
pub struct MetricsApi {
    token: Option<MetricsToken>,
}

impl MetricsApi {
    /// The operation; with a token, it answers only requests that carry it.
    pub fn new(token: Option<MetricsToken>) -> Self {
        Self { token }
    }
}

#[OpenApi]
impl MetricsApi {
    /// Prometheus metrics
    ///
    /// Scraped by Prometheus. Content negotiation as Go's promhttp does it:
    /// the text format (version 0.0.4) by default, the length-delimited
    /// protobuf format when `Accept` prefers it (q-values honoured); gzip when
    /// `Accept-Encoding` allows it. With `--metrics-token-file`, requires
    /// `Authorization: Bearer <token>`. Requests to this path are not counted
    /// in the `myapp_*` request metrics, but in
    /// `promhttp_metric_handler_requests_total`.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self, headers: &HeaderMap) -> MetricsResponse {
        let scrapes = SCRAPE_METRICS
            .get()
            .expect("metrics::init runs before the app is built");
        scrapes.in_flight.inc();
        let authorized = self.token.as_ref().is_none_or(|token| {
            token.authorizes(
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok()),
            )
        });
        let response = if authorized {
            MetricsResponse::exposition(&prometheus::gather(), headers)
        } else {
            MetricsResponse::unauthorized()
        };
        scrapes
            .requests
            .with_label_values(&[response.code().to_string()])
            .inc();
        scrapes.in_flight.dec();
        response
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use poem::http::HeaderValue;
    use prometheus::IntCounter;

    use super::*;

    const PROMETHEUS_2_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
    const PROMETHEUS_2_42_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const PROMETHEUS_2_CLASSIC: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn negotiation_follows_the_q_values_of_the_accept_header() {
        let cases = [
            (None, Format::Text),
            (Some(""), Format::Text),
            (Some("*/*"), Format::Text),
            (Some("text/plain"), Format::Text),
            (Some(PROMETHEUS_2_NATIVE), Format::Protobuf),
            (Some(PROMETHEUS_2_42_NATIVE), Format::Protobuf),
            (Some(PROMETHEUS_2_CLASSIC), Format::Text),
            // Text preferred by its q-value, though named second.
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.2,text/plain;version=0.0.4;q=0.9"), Format::Text),
            // Equal q-values: the first named wins.
            (Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited, text/plain"), Format::Protobuf),
            // q=0 refuses protobuf.
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0"), Format::Text),
            // Not the delimited encoding, or not MetricFamily: not something we serve.
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"), Format::Text),
            (Some("application/vnd.google.protobuf;proto=other.Message;encoding=delimited"), Format::Text),
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.4,text/plain;version=1.0.0;q=0.9"), Format::Protobuf),
            (Some("garbage;;;,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"), Format::Protobuf),
        ];
        for (accept, expected) in cases {
            assert_eq!(Format::negotiate(accept), expected, "Accept: {accept:?}");
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

    fn families() -> Vec<MetricFamily> {
        let registry = Registry::new();
        let counter = IntCounter::new("test_total", "A test counter").unwrap();
        counter.inc_by(7);
        registry.register(Box::new(counter)).unwrap();
        registry.gather()
    }

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), HeaderValue::from_static(value)))
            .collect()
    }

    fn body_of(response: MetricsResponse) -> (&'static str, Option<String>, Vec<u8>) {
        match response {
            MetricsResponse::Ok(Exposition::Text(Binary(body)), encoding, vary) => {
                assert_eq!(vary, VARY);
                ("text", encoding, body)
            }
            MetricsResponse::Ok(Exposition::Protobuf(Binary(body)), encoding, vary) => {
                assert_eq!(vary, VARY);
                ("protobuf", encoding, body)
            }
            other => panic!("not an exposition: status {}", other.code()),
        }
    }

    #[test]
    fn the_exposition_is_gzipped_when_asked_and_decompresses_to_the_plain_one() {
        let plain = body_of(MetricsResponse::exposition(&families(), &HeaderMap::new()));
        assert_eq!(
            (plain.0, plain.1.as_deref()),
            ("text", None),
            "no headers: plain text"
        );
        assert_eq!(
            String::from_utf8(plain.2.clone()).unwrap(),
            "# HELP test_total A test counter\n# TYPE test_total counter\ntest_total 7\n"
        );
        let zipped = body_of(MetricsResponse::exposition(
            &families(),
            &headers(&[(header::ACCEPT_ENCODING, "gzip")]),
        ));
        assert_eq!((zipped.0, zipped.1.as_deref()), ("text", Some("gzip")));
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&zipped.2[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain.2);
    }

    #[test]
    fn a_family_that_cannot_be_encoded_answers_500_with_the_reason() {
        // The encoders refuse a family without a metric.
        let mut empty = MetricFamily::default();
        empty.set_name("empty".to_string());
        empty.set_help("no metric".to_string());
        for accept in ["text/plain", PROTOBUF_FORMAT] {
            let response = MetricsResponse::exposition(
                std::slice::from_ref(&empty),
                &headers(&[(header::ACCEPT, accept)]),
            );
            let MetricsResponse::Failed(PlainText(reason)) = response else {
                panic!("expected a 500 for Accept: {accept}");
            };
            let why = prometheus::Error::Msg(format!("MetricFamily has no metrics: {empty:?}"));
            assert_eq!(reason, format!("failed to encode metrics: {why}"));
        }
    }

    #[test]
    fn scrape_counters_of_200_500_and_503_start_at_zero() {
        let registry = Registry::new();
        ScrapeMetrics::register(&registry).unwrap();
        let text = String::from_utf8(Format::Text.encode(&registry.gather()).unwrap()).unwrap();
        assert_eq!(
            text,
            "# HELP promhttp_metric_handler_requests_in_flight Current number of scrapes being served.\n\
             # TYPE promhttp_metric_handler_requests_in_flight gauge\n\
             promhttp_metric_handler_requests_in_flight 0\n\
             # HELP promhttp_metric_handler_requests_total Total number of scrapes by HTTP status code.\n\
             # TYPE promhttp_metric_handler_requests_total counter\n\
             promhttp_metric_handler_requests_total{code=\"200\"} 0\n\
             promhttp_metric_handler_requests_total{code=\"500\"} 0\n\
             promhttp_metric_handler_requests_total{code=\"503\"} 0\n"
        );
    }
}
