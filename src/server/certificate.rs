//! The server certificate of `--web-config-file`: read again when its files
//! change, so that a rotated certificate is served without a restart (as
//! exporter-toolkit reads them for each connection), with a warning when it
//! has expired or expires within 7 days.
use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use time::{Date, Month, OffsetDateTime};

use super::web_config::{read, read_certificates};

/// How long before its end a certificate is warned about.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);

/// The certificate and key of `cert_file` and `key_file`, read again on the
/// first handshake after either file changes (its inode or modification
/// time). A pair that does not load (a key that does not match, while a
/// rotation has written one file and not yet the other) is logged, and the
/// previous one is served until the files change again.
#[derive(Debug)]
pub struct ServerCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<(Stamps, Arc<CertifiedKey>)>,
}

/// What tells that a file changed: its inode and modification time, or
/// nothing when it cannot be read.
type Stamps = [Option<(u64, SystemTime)>; 2];

impl ServerCertificate {
    /// Reads the pair, or says why it cannot be used.
    pub fn load(
        cert_path: PathBuf,
        key_path: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let stamps = stamps(&cert_path, &key_path);
        let key = certified_key(&cert_path, &key_path, &provider)?;
        Ok(Self {
            cert_path,
            key_path,
            provider,
            current: Mutex::new((stamps, key)),
        })
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let stamps = stamps(&self.cert_path, &self.key_path);
        if stamps != current.0 {
            current.0 = stamps;
            match certified_key(&self.cert_path, &self.key_path, &self.provider) {
                Ok(key) => {
                    tracing::info!(cert_file = %self.cert_path.display(), "server certificate read again");
                    current.1 = key;
                }
                Err(error) => tracing::warn!(
                    %error,
                    "server certificate files changed but cannot be used; serving the previous one"
                ),
            }
        }
        Some(current.1.clone())
    }
}

fn stamps(cert_path: &Path, key_path: &Path) -> Stamps {
    [cert_path, key_path].map(|path| {
        let metadata = std::fs::metadata(path).ok()?;
        Some((metadata.ino(), metadata.modified().ok()?))
    })
}

/// The certificate chain of `cert_path` with the key of `key_path`, checked
/// to match; warns when the certificate expires within [`EXPIRY_WARNING`].
fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let certs = read_certificates(cert_path, "cert_file")?;
    let key = PrivateKeyDer::from_pem_slice(&read(key_path, "key_file")?)
        .map_err(|_| format!("key_file {}: no PEM private key in it", key_path.display()))?;
    if let Some(warning) =
        not_after(&certs[0]).and_then(|end| expiry(end, OffsetDateTime::now_utc()))
    {
        tracing::warn!(cert_file = %cert_path.display(), "{warning}");
    }
    let key = CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        format!(
            "cert_file {} and key_file {}: {e}",
            cert_path.display(),
            key_path.display()
        )
    })?;
    Ok(Arc::new(key))
}

/// The warning for a certificate valid until `end`, at `now`: none when
/// more than [`EXPIRY_WARNING`] is left.
fn expiry(end: OffsetDateTime, now: OffsetDateTime) -> Option<String> {
    let date = end.date();
    let at = format!(
        "{date} {:02}:{:02}:{:02} UTC",
        end.hour(),
        end.minute(),
        end.second()
    );
    if end <= now {
        return Some(format!("the server certificate expired at {at}"));
    }
    (end - now <= EXPIRY_WARNING)
        .then(|| format!("the server certificate expires at {at}, within 7 days"))
}

/// The end of the validity of a DER certificate (`notAfter`), or none when
/// it cannot be found.
fn not_after(cert: &[u8]) -> Option<OffsetDateTime> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
    // OPTIONAL, serialNumber, signature, issuer, validity SEQUENCE {
    // notBefore, notAfter }, ... }, ... }
    let (_, certificate, _) = der_value(cert)?;
    let (_, mut tbs, _) = der_value(certificate)?;
    if tbs.first() == Some(&0xa0) {
        tbs = der_value(tbs)?.2;
    }
    for _ in 0..3 {
        tbs = der_value(tbs)?.2;
    }
    let (_, validity, _) = der_value(tbs)?;
    let (_, _, validity) = der_value(validity)?;
    let (tag, end, _) = der_value(validity)?;
    let end = std::str::from_utf8(end).ok()?.strip_suffix('Z')?;
    // UTCTime (YYMMDDHHMMSS, years 1950 to 2049) or GeneralizedTime
    // (YYYYMMDDHHMMSS), RFC 5280 section 4.1.2.5.
    let (year, rest) = match (tag, end.len()) {
        (0x17, 12) => {
            let year: i32 = end[..2].parse().ok()?;
            (if year < 50 { 2000 + year } else { 1900 + year }, &end[2..])
        }
        (0x18, 14) => (end[..4].parse().ok()?, &end[4..]),
        _ => return None,
    };
    let field = |i: usize| rest.get(i..i + 2)?.parse::<u8>().ok();
    let date = Date::from_calendar_date(year, Month::try_from(field(0)?).ok()?, field(2)?).ok()?;
    Some(
        date.with_hms(field(4)?, field(6)?, field(8)?)
            .ok()?
            .assume_utc(),
    )
}

/// The tag and contents of the DER value that `der` starts with, and what
/// follows it.
fn der_value(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len, rest) = rest.split_at(count);
        (
            len.iter().fold(0, |len, &b| len << 8 | usize::from(b)),
            rest,
        )
    };
    (rest.len() >= len).then(|| {
        let (contents, rest) = rest.split_at(len);
        (tag, contents, rest)
    })
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;

    use super::*;

    /// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
    /// -subj /CN=test -days 30`, made on 2026-12-06: `openssl x509 -noout
    /// -enddate` prints `notAfter=Jan  5 09:37:48 2027 GMT` (a UTCTime).
    const CERT_2027: &str = include_str!("testdata/until-2027-01-05.crt");
    /// The same with `-days 10000`: `notAfter=Apr 23 09:37:50 2054 GMT` (a
    /// GeneralizedTime, as RFC 5280 asks from 2050 on).
    const CERT_2054: &str = include_str!("testdata/until-2054-04-23.crt");

    fn at(text: &str) -> OffsetDateTime {
        let [y, mo, d, h, mi, s] = text
            .split(&['-', 'T', ':'][..])
            .map(|n| n.parse::<i32>().unwrap())
            .collect::<Vec<_>>()[..]
        else {
            panic!("{text}")
        };
        Date::from_calendar_date(y, Month::try_from(mo as u8).unwrap(), d as u8)
            .unwrap()
            .with_hms(h as u8, mi as u8, s as u8)
            .unwrap()
            .assume_utc()
    }

    #[test]
    fn the_end_of_validity_is_read_as_openssl_prints_it() {
        let der = CertificateDer::from_pem_slice(CERT_2027.as_bytes()).unwrap();
        assert_eq!(not_after(&der), Some(at("2027-01-05T09:37:48")));
        assert_eq!(not_after(&der[..40]), None);
        let der = CertificateDer::from_pem_slice(CERT_2054.as_bytes()).unwrap();
        assert_eq!(not_after(&der), Some(at("2054-04-23T09:37:50")));
        assert_eq!(not_after(b""), None);
    }

    #[test]
    fn a_warning_is_given_from_7_days_before_the_end_and_after_it() {
        let end = at("2027-01-05T09:49:07");
        let cases = [
            ("2026-12-29T09:49:06", None),
            (
                "2026-12-29T09:49:07",
                Some("the server certificate expires at 2027-01-05 09:49:07 UTC, within 7 days"),
            ),
            (
                "2027-01-05T09:49:06",
                Some("the server certificate expires at 2027-01-05 09:49:07 UTC, within 7 days"),
            ),
            (
                "2027-01-05T09:49:07",
                Some("the server certificate expired at 2027-01-05 09:49:07 UTC"),
            ),
            (
                "2030-01-01T00:00:00",
                Some("the server certificate expired at 2027-01-05 09:49:07 UTC"),
            ),
        ];
        for (now, expected) in cases {
            assert_eq!(expiry(end, at(now)).as_deref(), expected, "{now}");
        }
    }
}
