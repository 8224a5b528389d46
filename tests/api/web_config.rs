//! `--web-config-file` at start-up: a bad file, or basic auth together with
//! the bearer token, stops it with one line. scripts/e2e-web-config.sh tests
//! TLS and basic auth with openssl's certificates, curl and a real Prometheus.
use std::path::PathBuf;

use crate::{binary::start_up_error, helpers::TokenFile};

/// A file holding `text`, removed when dropped.
pub struct TextFile(PathBuf);

impl TextFile {
    pub fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("myapp-test-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TextFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_bad_web_config_file_stops_start_up_with_one_line_naming_it() {
    let expected = "error: --web-config-file /nonexistent/web.yml: cannot read: \
                    No such file or directory (os error 2)";
    assert_eq!(
        start_up_error(&["--web-config-file", "/nonexistent/web.yml"], &[]),
        expected
    );
    assert_eq!(
        start_up_error(&[], &[("MYAPP_WEB_CONFIG_FILE", "/nonexistent/web.yml")]),
        expected
    );
    let file = TextFile::new(
        "web-config-bad-hash",
        "basic_auth_users: {prometheus: s3cret}",
    );
    let line = start_up_error(&["--web-config-file", file.path()], &[]);
    assert_eq!(
        line,
        format!(
            "error: --web-config-file {}: basic_auth_users: the hash of user \"prometheus\" \
             is not a bcrypt hash",
            file.path()
        )
    );
    assert!(!line.contains("s3cret"), "{line}");
}

#[test]
fn basic_auth_and_a_bearer_token_together_stop_start_up() {
    // A bcrypt hash of "pw" made by Python's bcrypt.
    let web = TextFile::new(
        "web-config-users",
        "basic_auth_users: {prometheus: $2b$04$kPK.7DmElstOowpWSYgFkOKfgpLVjQ4p074QPUmzaXDIsmB535cZG}",
    );
    let token = TokenFile::new("web-config-token", "t0ken");
    let web_path = web.path();
    assert_eq!(
        start_up_error(
            &[
                "--web-config-file",
                web_path,
                "--metrics-token-file",
                token.path.to_str().unwrap()
            ],
            &[]
        ),
        format!(
            "error: --web-config-file {web_path} lists basic_auth_users and \
             --metrics-token-file is set: a request carries one Authorization header, so use \
             one of them"
        )
    );
}

#[test]
fn a_web_config_error_names_the_field_and_never_echoes_what_the_file_holds() {
    let secret = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7secret";
    // The key itself where its file's name belongs.
    let web = TextFile::new(
        "web-config-key-pem",
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: |\n    \
             -----BEGIN PRIVATE KEY-----\n    {secret}\n    -----END PRIVATE KEY-----\n"
        ),
    );
    let line = start_up_error(&["--web-config-file", web.path()], &[]);
    assert_eq!(
        line,
        format!(
            "error: --web-config-file {}: tls_server_config: key_file holds PEM text, not the \
             name of a file: put the PEM in a file and name that file",
            web.path()
        )
    );
    // A password where the map of users belongs.
    let web = TextFile::new(
        "web-config-users-scalar",
        &format!("basic_auth_users: {secret}\n"),
    );
    let line = start_up_error(&["--web-config-file", web.path()], &[]);
    assert_eq!(
        line,
        format!(
            "error: --web-config-file {}: basic_auth_users: invalid type: string, expected a \
             map at line 1 column 19",
            web.path()
        )
    );
    assert!(!line.contains(secret), "{line}");
}
