//! Basic auth against the bcrypt hashes of `--web-config-file`'s
//! `basic_auth_users`, in front of every path of its port but the probes.
use std::{collections::BTreeMap, fmt, future::Future, sync::Arc};

use base64::{engine::general_purpose::STANDARD, Engine};
use futures_util::{future::Either, TryFutureExt};
use poem::{
    http::{header, StatusCode},
    Endpoint, IntoResponse, Middleware, Request, Response,
};

/// Paths that answer without credentials: the kubelet's probes carry none,
/// and they tell nothing.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The users and their bcrypt hashes. `Debug` shows the names only.
#[derive(Clone)]
pub struct BasicAuthUsers(Arc<BTreeMap<String, String>>);

impl BasicAuthUsers {
    /// The users of `users` (name to bcrypt hash), or which one has a hash
    /// that is not bcrypt's. At least one user.
    pub fn new(users: BTreeMap<String, String>) -> Result<Self, String> {
        if let Some(user) = users
            .iter()
            .find(|(_, hash)| hash.parse::<bcrypt::HashParts>().is_err())
            .map(|(user, _)| user)
        {
            return Err(format!(
                "basic_auth_users: the hash of user {user:?} is not a bcrypt hash"
            ));
        }
        if users.is_empty() {
            return Err("basic_auth_users: no user".into());
        }
        Ok(Self(Arc::new(users)))
    }

    /// Whether `authorization` is `Basic base64(user:password)` for a listed
    /// user and that user's password. bcrypt compares in constant time; an
    /// unknown user is checked against another user's hash all the same, so
    /// that the time taken does not tell which names exist. bcrypt takes tens
    /// of milliseconds at the usual cost of 10: it runs on the blocking pool.
    pub async fn authorize(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return false;
        };
        let users = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let (known, hash) = match users.get(&user) {
                Some(hash) => (true, hash),
                None => (false, users.values().next().expect("at least one user")),
            };
            let matches = bcrypt::verify(password.as_bytes(), hash).unwrap_or(false);
            known && matches
        })
        .await
        .unwrap_or(false)
    }
}

impl fmt::Debug for BasicAuthUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BasicAuthUsers")
            .field(&self.0.keys().collect::<Vec<_>>())
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
