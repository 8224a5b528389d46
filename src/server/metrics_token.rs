//! The bearer token that `--metrics-token-file` puts in front of `/metrics`.
use std::{
    fmt,
    path::{Path, PathBuf},
};

use poem::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

/// The token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("--metrics-token-file {}: cannot read: {source}", path.display())]
    Unreadable {
        /// The file named.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file holds nothing but white space.
    #[error("--metrics-token-file {}: the file is empty", path.display())]
    Empty {
        /// The file named.
        path: PathBuf,
    },
    /// The token holds a character that cannot travel in an HTTP header.
    #[error(
        "--metrics-token-file {}: the token must be one line of printable ASCII without spaces",
        path.display()
    )]
    Malformed {
        /// The file named.
        path: PathBuf,
    },
}

/// A secret token. Its `Debug` does not show it, so that it cannot reach a log.
#[derive(Clone)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// Reads the token from `path`, without the white space around it (a
    /// trailing newline, as Prometheus's `credentials_file` also drops it).
    pub fn read(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(TokenFileError::Empty {
                path: path.to_owned(),
            });
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenFileError::Malformed {
                path: path.to_owned(),
            });
        }
        Ok(Self(token.to_owned()))
    }

    /// Whether a request with these headers may pass: always without a
    /// token, else when it carries `Authorization: Bearer <token>`.
    pub fn admits(token: Option<&Self>, headers: &HeaderMap) -> bool {
        token.is_none_or(|token| {
            token.authorizes(
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok()),
            )
        })
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`.
    /// The scheme is case-insensitive; the token is compared in constant time.
    pub fn authorizes(&self, authorization: Option<&str>) -> bool {
        let Some((scheme, credentials)) = authorization.and_then(|value| value.split_once(' '))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && bool::from(credentials.trim().as_bytes().ct_eq(self.0.as_bytes()))
    }
}

impl fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> MetricsToken {
        MetricsToken("s3cret-Token".to_string())
    }

    #[test]
    fn only_the_bearer_scheme_with_the_exact_token_authorizes() {
        let token = token();
        let cases = [
            (Some("Bearer s3cret-Token"), true),
            (Some("bearer s3cret-Token"), true),
            (Some("Bearer  s3cret-Token "), true),
            (None, false),
            (Some(""), false),
            (Some("Bearer"), false),
            (Some("Bearer "), false),
            (Some("Bearer s3cret-token"), false),
            (Some("Bearer s3cret-Token2"), false),
            (Some("Bearer s3cret"), false),
            (Some("Basic s3cret-Token"), false),
            (Some("s3cret-Token"), false),
        ];
        for (authorization, expected) in cases {
            assert_eq!(
                token.authorizes(authorization),
                expected,
                "Authorization: {authorization:?}"
            );
        }
    }

    #[test]
    fn debug_does_not_show_the_token() {
        assert_eq!(format!("{:?}", token()), "MetricsToken(<redacted>)");
    }

    #[test]
    fn the_file_is_read_without_its_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("myapp-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            ("newline", "abc\n", Ok("abc")),
            ("crlf", "abc\r\n", Ok("abc")),
            ("empty", "", Err("the file is empty")),
            ("blank", " \n", Err("the file is empty")),
            (
                "two-lines",
                "abc\ndef\n",
                Err("the token must be one line of printable ASCII without spaces"),
            ),
        ];
        for (name, content, expected) in cases {
            let path = dir.join(name);
            std::fs::write(&path, content).unwrap();
            let got = MetricsToken::read(&path)
                .map(|t| t.0)
                .map_err(|e| e.to_string());
            let expected = expected
                .map(str::to_owned)
                .map_err(|why| format!("--metrics-token-file {}: {why}", path.display()));
            assert_eq!(got, expected, "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let error = MetricsToken::read(Path::new("/nonexistent/token")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--metrics-token-file /nonexistent/token: cannot read: No such file or directory (os error 2)"
        );
    }
}
