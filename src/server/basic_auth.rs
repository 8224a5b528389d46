//! Basic auth against the bcrypt hashes of `--web-config-file`'s
//! `basic_auth_users`, in front of every path of its port but the probes.
use std::{
    collections::BTreeMap,
    fmt,
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
};

use base64::{engine::general_purpose::STANDARD, Engine};
use futures_util::{future::Either, TryFutureExt};
use poem::{
    http::{header, StatusCode},
    Endpoint, IntoResponse, Middleware, Request, Response,
};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// Paths that answer without credentials: the kubelet's probes carry none,
/// and they tell nothing.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The longest password bcrypt reads; it ignores what follows, so a longer
/// one is refused, as Go's bcrypt does (`ErrPasswordTooLong`).
pub const MAX_PASSWORD_BYTES: usize = 72;

/// The users and their bcrypt hashes. `Debug` shows the names only.
#[derive(Clone)]
pub struct BasicAuthUsers(Arc<Users>);

struct Users {
    hashes: BTreeMap<String, String>,
    /// The SHA-256 of each user's password once bcrypt has verified it: a
    /// scrape with those credentials again does no bcrypt work, as
    /// exporter-toolkit caches its verifications. Only the password of the
    /// hash verifies, so this holds at most one entry per user.
    verified: Mutex<BTreeMap<String, [u8; 32]>>,
    /// One bcrypt verification at a time, as exporter-toolkit does: clients
    /// with wrong passwords queue here instead of taking every core.
    bcrypt: Semaphore,
    /// bcrypt verifications run, for the tests.
    bcrypt_runs: AtomicUsize,
}

impl BasicAuthUsers {
    /// The users of `users` (name to bcrypt hash), or which one has a hash
    /// that is not bcrypt's or a cost bcrypt does not have (4 to 31). At
    /// least one user.
    pub fn new(users: BTreeMap<String, String>) -> Result<Self, String> {
        for (user, hash) in &users {
            let Ok(parts) = hash.parse::<bcrypt::HashParts>() else {
                return Err(format!(
                    "basic_auth_users: the hash of user {user:?} is not a bcrypt hash"
                ));
            };
            let cost = parts.get_cost();
            if !(4..=31).contains(&cost) {
                return Err(format!(
                    "basic_auth_users: the hash of user {user:?} has cost {cost}; \
                     bcrypt's costs are 4 to 31"
                ));
            }
        }
        if users.is_empty() {
            return Err("basic_auth_users: no user".into());
        }
        Ok(Self(Arc::new(Users {
            hashes: users,
            verified: Mutex::default(),
            bcrypt: Semaphore::new(1),
            bcrypt_runs: AtomicUsize::new(0),
        })))
    }

    /// Whether `authorization` is `Basic base64(user:password)` for a listed
    /// user and that user's password, of at most [`MAX_PASSWORD_BYTES`].
    /// Credentials verified before pass without bcrypt; others wait their
    /// turn for it. bcrypt compares in constant time; an unknown user is
    /// checked against another user's hash all the same, so that the time
    /// taken does not tell which names exist. bcrypt takes tens of
    /// milliseconds at the usual cost of 10: it runs on the blocking pool.
    pub async fn authorize(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return false;
        };
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        let digest = sha256(&password);
        let verified = self
            .0
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&user)
            .is_some_and(|known| bool::from(known.ct_eq(&digest)));
        if verified {
            return true;
        }
        // The semaphore is never closed.
        let Ok(_turn) = self.0.bcrypt.acquire().await else {
            return false;
        };
        let users = self.0.clone();
        tokio::task::spawn_blocking(move || {
            users.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
            let (known, hash) = match users.hashes.get(&user) {
                Some(hash) => (true, hash),
                None => (
                    false,
                    users.hashes.values().next().expect("at least one user"),
                ),
            };
            // bcrypt runs for an unknown user too.
            let matches = bcrypt::verify(password.as_bytes(), hash).unwrap_or(false) && known;
            if matches {
                users
                    .verified
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(user, digest);
            }
            matches
        })
        .await
        .unwrap_or(false)
    }
}

fn sha256(password: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, password.as_bytes());
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl fmt::Debug for BasicAuthUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BasicAuthUsers")
            .field(&self.0.hashes.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The user and password of `Basic <base64(user:password)>`; the scheme is
/// case-insensitive.
fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, encoded) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Answers 401 with `WWW-Authenticate: Basic` to requests without the
/// credentials of one of the users, except on the probes' paths; without
/// users, leaves the endpoint as it is.
pub struct BasicAuth(pub Option<BasicAuthUsers>);

impl<E: Endpoint> Middleware<E> for BasicAuth {
    type Output = BasicAuthEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BasicAuthEndpoint {
            inner,
            users: self.0.clone(),
        }
    }
}

/// The endpoint of [`BasicAuth`].
pub struct BasicAuthEndpoint<E> {
    inner: E,
    users: Option<BasicAuthUsers>,
}

impl<E: Endpoint> Endpoint for BasicAuthEndpoint<E> {
    type Output = Response;

    // perf: not `async`: a request let through as it is gets the inner
    // future itself, and only one that must be authorized a future of its
    // own, boxed. An `async fn` (or poem's `EitherEndpoint`) would hold the
    // 472-byte request twice and bcrypt's future beside the inner one, in
    // every request's future, with or without users.
    fn call(&self, req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        let users = match &self.users {
            Some(users) if !OPEN_PATHS.contains(&req.uri().path()) => users,
            _ => return Either::Left(self.inner.call(req).map_ok(IntoResponse::into_response)),
        };
        Either::Right(Box::pin(async move {
            let authorization = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok());
            if users.authorize(authorization).await {
                return self.inner.call(req).await.map(IntoResponse::into_response);
            }
            Ok(Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::WWW_AUTHENTICATE, "Basic")
                .body("Unauthorized\n"))
        }))
    }
}

#[cfg(test)]
mod tests {
    use poem::{handler, test::TestClient, EndpointExt, Route};

    use super::*;

    // Made with Python's bcrypt, not with the crate under test:
    // bcrypt.hashpw(b"s3cret pass:word", bcrypt.gensalt(4)).
    const PROMETHEUS_HASH: &str = "$2b$04$aUQfPYFG3rdS5LwZ0taMj.EjrAdtKUS8a1.WKRLPu6oBng9PCGHLi";
    // bcrypt.hashpw(b"other", bcrypt.gensalt(4)), with the $2y$ prefix that
    // htpasswd writes (the same algorithm).
    const GRAFANA_HASH: &str = "$2y$04$/fKNB3bFLVcy0CVJG398n.XvG3Fg9onKnelSAun48Rfgm1Wsw90gy";

    fn users() -> BasicAuthUsers {
        BasicAuthUsers::new(BTreeMap::from([
            ("prometheus".to_string(), PROMETHEUS_HASH.to_string()),
            ("grafana".to_string(), GRAFANA_HASH.to_string()),
        ]))
        .unwrap()
    }

    fn basic(credentials: &str) -> String {
        format!("Basic {}", STANDARD.encode(credentials))
    }

    #[tokio::test]
    async fn only_a_listed_user_with_the_password_of_its_hash_is_let_in() {
        let users = users();
        let cases = [
            (basic("prometheus:s3cret pass:word"), true),
            (basic("grafana:other"), true),
            (format!("basic {}", STANDARD.encode("grafana:other")), true),
            (basic("prometheus:s3cret pass:wor"), false),
            (basic("prometheus:s3cret pass:word "), false),
            (basic("prometheus:other"), false),
            (basic("grafana:s3cret pass:word"), false),
            (basic("nobody:s3cret pass:word"), false),
            (basic("Prometheus:s3cret pass:word"), false),
            (basic("prometheus"), false),
            ("Basic !!!".to_string(), false),
            ("Bearer s3cret pass:word".to_string(), false),
            (String::new(), false),
        ];
        for (authorization, expected) in cases {
            assert_eq!(
                users.authorize(Some(&authorization)).await,
                expected,
                "{authorization}"
            );
        }
        assert!(!users.authorize(None).await);
    }

    // bcrypt.hashpw(b"a" * 72, bcrypt.gensalt(4)): Python's bcrypt takes
    // 72 bytes at most.
    const SEVENTY_TWO_A_HASH: &str = "$2b$04$kNGfI50E2v3Z81IwndHjZO55lvw8z8ESsPdtf9Z9pgN7dD9F1PFpu";

    fn bcrypt_runs(users: &BasicAuthUsers) -> usize {
        users.0.bcrypt_runs.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn a_password_of_72_bytes_is_checked_and_a_longer_one_refused_without_bcrypt() {
        let users = BasicAuthUsers::new(BTreeMap::from([(
            "long".to_string(),
            SEVENTY_TWO_A_HASH.to_string(),
        )]))
        .unwrap();
        let a72 = "a".repeat(72);
        assert!(users.authorize(Some(&basic(&format!("long:{a72}")))).await);
        assert_eq!(bcrypt_runs(&users), 1);
        // bcrypt alone would let these in: it reads 72 bytes.
        for extra in ["a", "b", "anything at all"] {
            assert!(
                !users
                    .authorize(Some(&basic(&format!("long:{a72}{extra}"))))
                    .await
            );
        }
        assert_eq!(bcrypt_runs(&users), 1);
        assert!(
            !users
                .authorize(Some(&basic(&format!("long:{}", "a".repeat(71)))))
                .await
        );
        assert_eq!(bcrypt_runs(&users), 2);
    }

    #[tokio::test]
    async fn credentials_verified_once_pass_again_without_bcrypt_and_others_still_run_it() {
        let users = users();
        let prometheus = basic("prometheus:s3cret pass:word");
        assert!(users.authorize(Some(&prometheus)).await);
        assert_eq!(bcrypt_runs(&users), 1);
        for _ in 0..5 {
            assert!(users.authorize(Some(&prometheus)).await);
        }
        assert_eq!(bcrypt_runs(&users), 1, "cached: no bcrypt");
        // A wrong password, another user's password, an unknown user: each
        // runs bcrypt and is refused, every time.
        for credentials in [
            "prometheus:s3cret pass:wor",
            "grafana:s3cret pass:word",
            "nobody:s3cret pass:word",
            "prometheus:s3cret pass:wor",
        ] {
            assert!(
                !users.authorize(Some(&basic(credentials))).await,
                "{credentials}"
            );
        }
        assert_eq!(bcrypt_runs(&users), 5);
        assert!(users.authorize(Some(&basic("grafana:other"))).await);
        assert!(users.authorize(Some(&basic("grafana:other"))).await);
        assert!(users.authorize(Some(&prometheus)).await);
        assert_eq!(bcrypt_runs(&users), 6);
    }

    #[tokio::test]
    async fn a_cached_login_does_no_bcrypt_work_while_wrong_passwords_wait_for_it() {
        let users = users();
        let prometheus = basic("prometheus:s3cret pass:word");
        assert!(users.authorize(Some(&prometheus)).await);
        // Every bcrypt turn taken, as by clients with wrong passwords: the
        // cached login passes all the same, and an uncached one waits.
        let turn = users.0.bcrypt.acquire().await.unwrap();
        assert!(users.authorize(Some(&prometheus)).await);
        let wrong = tokio::spawn({
            let users = users.clone();
            async move { users.authorize(Some(&basic("prometheus:wrong"))).await }
        });
        tokio::task::yield_now().await;
        assert!(!wrong.is_finished());
        assert_eq!(bcrypt_runs(&users), 1);
        drop(turn);
        assert!(!wrong.await.unwrap());
        assert_eq!(bcrypt_runs(&users), 2);
    }

    #[test]
    fn a_hash_with_a_cost_bcrypt_does_not_have_is_refused() {
        // The hash of PROMETHEUS_HASH with its cost 04 replaced.
        for (cost, accepted) in [
            ("03", false),
            ("04", true),
            ("31", true),
            ("32", false),
            ("99", false),
        ] {
            let hash = PROMETHEUS_HASH.replacen("$04$", &format!("${cost}$"), 1);
            let result = BasicAuthUsers::new(BTreeMap::from([("prometheus".to_string(), hash)]));
            match accepted {
                true => assert!(result.is_ok(), "cost {cost}"),
                false => assert_eq!(
                    result.unwrap_err(),
                    format!(
                        "basic_auth_users: the hash of user \"prometheus\" has cost {}; \
                         bcrypt's costs are 4 to 31",
                        cost.trim_start_matches('0')
                    )
                ),
            }
        }
    }

    #[test]
    fn a_hash_that_is_not_bcrypt_is_refused_naming_its_user_only() {
        let error = BasicAuthUsers::new(BTreeMap::from([(
            "prometheus".to_string(),
            "plain-text-password".to_string(),
        )]))
        .unwrap_err();
        assert_eq!(
            error,
            "basic_auth_users: the hash of user \"prometheus\" is not a bcrypt hash"
        );
    }

    #[test]
    fn debug_shows_the_names_not_the_hashes() {
        assert_eq!(
            format!("{:?}", users()),
            r#"BasicAuthUsers(["grafana", "prometheus"])"#
        );
    }

    #[handler]
    fn ok() -> &'static str {
        "ok"
    }

    #[tokio::test]
    async fn every_path_but_the_probes_asks_for_credentials() {
        let app = TestClient::new(
            Route::new()
                .at("/metrics", ok)
                .at("/healthz", ok)
                .at("/readyz", ok)
                .with(BasicAuth(Some(users()))),
        );
        let response = app.get("/metrics").send().await;
        response.assert_status(StatusCode::UNAUTHORIZED);
        response.assert_header(header::WWW_AUTHENTICATE, "Basic");
        app.get("/metrics")
            .header(header::AUTHORIZATION, basic("prometheus:wrong"))
            .send()
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
        app.get("/metrics")
            .header(header::AUTHORIZATION, basic("prometheus:s3cret pass:word"))
            .send()
            .await
            .assert_text("ok")
            .await;
        for probe in OPEN_PATHS {
            app.get(probe).send().await.assert_text("ok").await;
        }
        // Only the exact paths.
        app.get("/healthz/x")
            .send()
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
}
