//! `--web-config-file`: TLS and basic auth for the port that serves `/metrics`,
//! in the format of Prometheus's exporter-toolkit, which node_exporter and
//! Prometheus itself read with `--web.config.file`:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt
//!   min_version: TLS12
//! basic_auth_users:
//!   prometheus: $2y$10$...   # bcrypt
//! ```
//!
//! Relative paths are relative to the file's directory, as in exporter-toolkit.
//! Its other keys (cipher suites, curves, allowed SANs, HTTP headers, rate
//! limits) are refused by name rather than ignored.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig, SupportedProtocolVersion,
};
use serde::Deserialize;

use crate::server::{basic_auth::BasicAuthUsers, certificate::ServerCertificate};

/// The web configuration file cannot be used: one line naming the file and
/// the problem, never a secret.
#[derive(Debug, thiserror::Error)]
#[error("--web-config-file {}: {reason}", path.display())]
pub struct WebConfigError {
    path: PathBuf,
    reason: String,
}

/// What the file asks for.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    /// TLS for the port, when `tls_server_config` names a certificate.
    pub tls: Option<Arc<ServerConfig>>,
    /// The users that basic auth lets in, when `basic_auth_users` lists any.
    pub users: Option<BasicAuthUsers>,
}

/// The file, as exporter-toolkit spells it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    #[serde(default, deserialize_with = "unique_users")]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

/// `basic_auth_users`, refusing a user listed twice (YAML would keep the last).
fn unique_users<'de, D>(deserializer: D) -> Result<Option<BTreeMap<String, String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Users;
    impl<'de> serde::de::Visitor<'de> for Users {
        type Value = Option<BTreeMap<String, String>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut users = BTreeMap::new();
            while let Some((user, hash)) = map.next_entry::<String, String>()? {
                if users.contains_key(&user) {
                    return Err(serde::de::Error::custom(format!(
                        "user {user:?} is listed twice"
                    )));
                }
                users.insert(user, hash);
            }
            Ok(Some(users))
        }
    }
    deserializer.deserialize_any(Users)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    #[serde(default)]
    cert_file: String,
    #[serde(default)]
    key_file: String,
    #[serde(default)]
    client_auth_type: String,
    #[serde(default)]
    client_ca_file: String,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
}

impl WebConfig {
    /// Reads and checks the file at `path`: its certificates and key load, its
    /// hashes are bcrypt hashes.
    pub fn read(path: &Path) -> Result<Self, WebConfigError> {
        let fail = |reason: String| WebConfigError {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let file: File = if text.trim().is_empty() {
            File {
                tls_server_config: None,
                basic_auth_users: None,
            }
        } else {
            serde_yaml::from_str(&text).map_err(|e| fail(without_values(&e.to_string())))?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = file
            .tls_server_config
            .unwrap_or_default()
            .server_config(dir)
            .map_err(fail)?;
        let users = match file.basic_auth_users {
            Some(users) if !users.is_empty() => Some(BasicAuthUsers::new(users).map_err(fail)?),
            _ => None,
        };
        Ok(Self { tls, users })
    }
}

/// serde_yaml's message on one line, without the values it quotes: it names
/// the key and the line, but "invalid type: string \"s3cret\", expected a
/// map" would echo what the file holds, a password or a key perhaps. The kind
/// of value stays ("invalid type: string, expected a map"); the keys it names
/// (`unknown field `x``) are the file's structure, not its secrets.
fn without_values(message: &str) -> String {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(start) = message.find(prefix).map(|at| at + prefix.len()) else {
            continue;
        };
        let end = message[start..]
            .find(", expected")
            .map_or(message.len(), |at| start + at);
        // The kind is the words before the value: `string "…"`, `integer `5``.
        let kind: Vec<&str> = message[start..end]
            .split(' ')
            .take_while(|word| !word.starts_with(['"', '`', '\'']))
            .collect();
        return format!("{}{}{}", &message[..start], kind.join(" "), &message[end..]);
    }
    message
}

/// Refuses a `*_file` value that holds PEM text instead of naming a file:
/// reading it as a path would put the key itself in the error.
fn file_name<'a>(key: &str, value: &'a str) -> Result<&'a str, String> {
    if value.contains('\n') || value.contains("-----BEGIN") {
        return Err(format!(
            "tls_server_config: {key} holds PEM text, not the name of a file: put the PEM in a \
             file and name that file"
        ));
    }
    Ok(value)
}

/// `client_auth_type`: whether a client certificate is asked for, and whether
/// it must be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    VerifyIfGiven,
    Require,
}

impl TlsFile {
    fn is_enabled(&self) -> bool {
        !(self.cert_file.is_empty()
            && self.key_file.is_empty()
            && self.client_ca_file.is_empty()
            && self.client_auth_type.is_empty())
    }

    /// The rustls configuration, or none when the section is absent or empty
    /// (plain HTTP, as exporter-toolkit does).
    fn server_config(&self, dir: &Path) -> Result<Option<Arc<ServerConfig>>, String> {
        if !self.is_enabled() {
            return Ok(None);
        }
        if self.cert_file.is_empty() {
            return Err("tls_server_config: cert_file is missing".into());
        }
        if self.key_file.is_empty() {
            return Err("tls_server_config: key_file is missing".into());
        }
        let client_auth = match self.client_auth_type.as_str() {
            "" | "NoClientCert" => ClientAuth::None,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::Require,
            "RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert" => {
                return Err(format!(
                    "tls_server_config: client_auth_type {} asks for certificates without \
                     verifying them, which myapp does not do: use VerifyClientCertIfGiven or \
                     RequireAndVerifyClientCert",
                    self.client_auth_type
                ))
            }
            other => {
                return Err(format!(
                    "tls_server_config: client_auth_type {other:?} is not one of NoClientCert, \
                     VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                ))
            }
        };
        match (client_auth, self.client_ca_file.is_empty()) {
            (ClientAuth::None, false) => {
                return Err(
                    "tls_server_config: client_ca_file is set but client_auth_type \
                            does not ask for client certificates"
                        .into(),
                )
            }
            (ClientAuth::VerifyIfGiven | ClientAuth::Require, true) => {
                return Err(format!(
                    "tls_server_config: client_auth_type {} needs client_ca_file",
                    self.client_auth_type
                ))
            }
            _ => {}
        }
        let versions = protocol_versions(self.min_version.as_deref(), self.max_version.as_deref())?;

        let cert_path = dir.join(file_name("cert_file", &self.cert_file)?);
        let key_path = dir.join(file_name("key_file", &self.key_file)?);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificate = ServerCertificate::load(cert_path, key_path, provider.clone())?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("tls_server_config: {e}"))?;
        let builder = if client_auth == ClientAuth::None {
            builder.with_no_client_auth()
        } else {
            let ca_path = dir.join(file_name("client_ca_file", &self.client_ca_file)?);
            let mut roots = RootCertStore::empty();
            for cert in read_certificates(&ca_path, "client_ca_file")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("client_ca_file {}: {e}", ca_path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if client_auth == ClientAuth::VerifyIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("client_ca_file {}: {e}", ca_path.display()))?,
            )
        };
        let mut config = builder.with_cert_resolver(Arc::new(certificate));
        // Only HTTP/1.1 is served.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}

pub(super) fn read(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key} {}: cannot read: {e}", path.display()))
}

pub(super) fn read_certificates(
    path: &Path,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(&read(path, key)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{key} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// The TLS versions from `min_version` to `max_version`, of those rustls
/// speaks (1.2 and 1.3); exporter-toolkit's defaults are TLS12 and TLS13.
fn protocol_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let parse = |key: &str, value: Option<&str>, default: u8| match value {
        None => Ok(default),
        Some("TLS10") => Ok(10),
        Some("TLS11") => Ok(11),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other) => Err(format!(
            "tls_server_config: {key} {other:?} is not one of TLS10, TLS11, TLS12, TLS13"
        )),
    };
    let (min, max) = (
        parse("min_version", min, 12)?,
        parse("max_version", max, 13)?,
    );
    let versions: Vec<_> = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(version, _)| (min..=max).contains(version))
        .map(|(_, supported)| supported)
        .collect();
    if versions.is_empty() {
        return Err(format!(
            "tls_server_config: no TLS version from min_version TLS{min} to max_version \
             TLS{max} is spoken (rustls speaks TLS12 and TLS13)"
        ));
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `yaml` to a fresh file in a fresh directory (with an empty
    /// `empty.pem` beside it) and reads it back; the error's reason.
    fn reason(name: &str, yaml: &str) -> String {
        let dir = std::env::temp_dir().join(format!("myapp-web-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("empty.pem"), "").unwrap();
        let path = dir.join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        let error = WebConfig::read(&path).expect_err(name);
        std::fs::remove_dir_all(&dir).unwrap();
        let prefix = format!("--web-config-file {}: ", path.display());
        error.to_string().strip_prefix(&prefix).unwrap().to_string()
    }

    #[test]
    fn each_bad_file_is_refused_with_one_line_naming_the_problem() {
        let cases = [
            (
                "unknown-key",
                "http_server_config:\n  http2: false\n",
                "unknown field `http_server_config`, expected `tls_server_config` or \
                 `basic_auth_users`",
            ),
            (
                "unknown-tls-key",
                "tls_server_config:\n  cipher_suites: []\n",
                "tls_server_config: unknown field `cipher_suites`, expected one of `cert_file`, \
                 `key_file`, `client_auth_type`, `client_ca_file`, `min_version`, `max_version` \
                 at line 2 column 3",
            ),
            (
                "no-cert",
                "tls_server_config:\n  key_file: empty.pem\n",
                "tls_server_config: cert_file is missing",
            ),
            (
                "no-key",
                "tls_server_config:\n  cert_file: empty.pem\n",
                "tls_server_config: key_file is missing",
            ),
            (
                "bad-auth-type",
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Yes\n",
                "tls_server_config: client_auth_type \"Yes\" is not one of NoClientCert, \
                 VerifyClientCertIfGiven, RequireAndVerifyClientCert",
            ),
            (
                "unverified",
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n",
                "tls_server_config: client_auth_type RequireAnyClientCert asks for certificates \
                 without verifying them, which myapp does not do: use VerifyClientCertIfGiven or \
                 RequireAndVerifyClientCert",
            ),
            (
                "ca-without-auth",
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
                "tls_server_config: client_ca_file is set but client_auth_type does not ask for \
                 client certificates",
            ),
            (
                "auth-without-ca",
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
                "tls_server_config: client_auth_type RequireAndVerifyClientCert needs client_ca_file",
            ),
            (
                "empty-cert",
                "tls_server_config:\n  cert_file: empty.pem\n  key_file: empty.pem\n",
                "cert_file DIR/empty.pem: no PEM certificate in it",
            ),
            (
                "missing-cert",
                "tls_server_config:\n  cert_file: nowhere.pem\n  key_file: empty.pem\n",
                "cert_file DIR/nowhere.pem: cannot read: No such file or directory (os error 2)",
            ),
            (
                "bad-hash",
                "basic_auth_users:\n  prometheus: secret-in-plain-text\n",
                "basic_auth_users: the hash of user \"prometheus\" is not a bcrypt hash",
            ),
            (
                "duplicate-user",
                "basic_auth_users:\n  prometheus: $2b$04$aUQfPYFG3rdS5LwZ0taMj.EjrAdtKUS8a1.WKRLPu6oBng9PCGHLi\n  grafana: $2b$04$aUQfPYFG3rdS5LwZ0taMj.EjrAdtKUS8a1.WKRLPu6oBng9PCGHLi\n  prometheus: $2b$04$aUQfPYFG3rdS5LwZ0taMj.EjrAdtKUS8a1.WKRLPu6oBng9PCGHLi\n",
                "basic_auth_users: user \"prometheus\" is listed twice at line 2 column 3",
            ),
            (
                "bad-cost",
                "basic_auth_users:\n  prometheus: $2b$99$aUQfPYFG3rdS5LwZ0taMj.EjrAdtKUS8a1.WKRLPu6oBng9PCGHLi\n",
                "basic_auth_users: the hash of user \"prometheus\" has cost 99; bcrypt's costs are 4 to 31",
            ),
            (
                "not-a-map",
                "basic_auth_users: [a, b]\n",
                "basic_auth_users: invalid type: sequence, expected a map at line 1 column 19",
            ),
            (
                "users-scalar",
                "basic_auth_users: secret-in-plain-text\n",
                "basic_auth_users: invalid type: string, expected a map at line 1 column 19",
            ),
            (
                "file-scalar",
                "secret-in-plain-text\n",
                "invalid type: string, expected struct File",
            ),
            (
                "tls-scalar",
                "tls_server_config: secret-in-plain-text\n",
                "tls_server_config: invalid type: string, expected struct TlsFile at line 1 \
                 column 20",
            ),
            (
                "password-number",
                "basic_auth_users:\n  prometheus: [secret-in-plain-text]\n",
                "basic_auth_users.prometheus: invalid type: sequence, expected a string at line \
                 2 column 15",
            ),
            (
                "key-is-pem",
                "tls_server_config:\n  cert_file: empty.pem\n  key_file: |\n    \
                 -----BEGIN PRIVATE KEY-----\n    secret-in-plain-text\n    \
                 -----END PRIVATE KEY-----\n",
                "tls_server_config: key_file holds PEM text, not the name of a file: put the PEM \
                 in a file and name that file",
            ),
            (
                "key-is-pem-folded",
                "tls_server_config:\n  cert_file: empty.pem\n  key_file: -----BEGIN PRIVATE \
                 KEY----- secret-in-plain-text -----END PRIVATE KEY-----\n",
                "tls_server_config: key_file holds PEM text, not the name of a file: put the PEM \
                 in a file and name that file",
            ),
        ];
        for (name, yaml, expected) in cases {
            let dir = std::env::temp_dir().join(format!("myapp-web-{}-{name}", std::process::id()));
            let expected = expected.replace("DIR", &dir.display().to_string());
            let got = reason(name, yaml);
            assert_eq!(got, expected, "{name}");
            assert!(!got.contains("secret-in-plain-text"), "{name}: {got}");
        }
    }

    #[test]
    fn an_empty_file_or_sections_ask_for_nothing() {
        let dir = std::env::temp_dir().join(format!("myapp-web-{}-empty", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, yaml) in [
            ("empty", ""),
            (
                "empty-sections",
                "tls_server_config: {}\nbasic_auth_users: {}\n",
            ),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, yaml).unwrap();
            let config = WebConfig::read(&path).unwrap();
            assert!(config.tls.is_none() && config.users.is_none(), "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_versions_run_from_min_to_max_within_tls12_and_tls13() {
        let names = |min, max| {
            protocol_versions(min, max).map(|versions| {
                versions
                    .iter()
                    .map(|v| format!("{:?}", v.version))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            names(None, None),
            Ok(vec!["TLSv1_2".into(), "TLSv1_3".into()])
        );
        assert_eq!(
            names(Some("TLS10"), None),
            Ok(vec!["TLSv1_2".into(), "TLSv1_3".into()])
        );
        assert_eq!(names(Some("TLS13"), None), Ok(vec!["TLSv1_3".into()]));
        assert_eq!(names(None, Some("TLS12")), Ok(vec!["TLSv1_2".into()]));
        assert_eq!(
            names(Some("TLS13"), Some("TLS12")),
            Err(
                "tls_server_config: no TLS version from min_version TLS13 to max_version TLS12 \
                 is spoken (rustls speaks TLS12 and TLS13)"
                    .into()
            )
        );
        assert_eq!(
            names(None, Some("TLS11")),
            Err(
                "tls_server_config: no TLS version from min_version TLS12 to max_version TLS11 \
                 is spoken (rustls speaks TLS12 and TLS13)"
                    .into()
            )
        );
        assert_eq!(
            names(Some("1.2"), None),
            Err(
                "tls_server_config: min_version \"1.2\" is not one of TLS10, TLS11, TLS12, TLS13"
                    .into()
            )
        );
    }
}
