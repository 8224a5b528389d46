//! Property tests of the guards that face clients and operators: workload
//! changes are all or nothing, the bearer token and basic auth let in only
//! the exact credentials, and no error about the web configuration file
//! holds a secret. Each generates inputs whose outcome the test knows from
//! how it built them; 256 cases each (64 for the web configuration, which
//! writes files).
use std::collections::BTreeMap;

use base64::{engine::general_purpose::STANDARD, Engine};
use myapp::{
    server::{basic_auth::BasicAuthUsers, web_config::WebConfig},
    workload::{Settings, Source, Workload, WorkloadMetrics},
};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::helpers::TokenFile;

// --- workload changes --------------------------------------------------------------

const DELAY_CAP_MS: u64 = 1000;

const BEFORE: Settings = Settings {
    min_delay_ms: 10,
    max_delay_ms: 100,
    error_rate: 0.5,
    slow_rate: 0.125,
    slow_delay_ms: 500,
};

/// A value for a setting, and what it is as a share and as a delay (`None`:
/// not one).
type SettingValue = (Value, Option<f64>, Option<u64>);

fn value() -> impl Strategy<Value = SettingValue> {
    prop::sample::select(vec![
        (json!(0), Some(0.0), Some(0)),
        (json!(1), Some(1.0), Some(1)),
        (json!(0.25), Some(0.25), None),
        (json!(-0.0), Some(0.0), None),
        (json!(1.5), None, None),
        (json!(-0.1), None, None),
        (json!(-1), None, None),
        (json!(50), None, Some(50)),
        (json!(1000), None, Some(1000)),
        (json!(1001), None, Some(1001)),
        (json!(5000), None, Some(5000)),
        (json!(2.5), None, None),
        (json!("0.5"), None, None),
        (json!(null), None, None),
        (json!(true), None, None),
        (json!([1]), None, None),
    ])
}

/// A key of a change: the five settings and two that are not.
fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "min_delay_ms",
        "max_delay_ms",
        "error_rate",
        "slow_rate",
        "slow_delay_ms",
        "Error_Rate",
        "delay",
    ])
}

/// The settings after `change`, by the rules of docs/workload.md, or none
/// when it must be refused.
fn expected(before: Settings, change: &[(&str, SettingValue)]) -> Option<Settings> {
    let mut after = before;
    for (key, (_, share, delay)) in change {
        match *key {
            "error_rate" => after.error_rate = (*share)?,
            "slow_rate" => after.slow_rate = (*share)?,
            "min_delay_ms" => after.min_delay_ms = (*delay)?,
            "max_delay_ms" => after.max_delay_ms = (*delay)?,
            "slow_delay_ms" => after.slow_delay_ms = (*delay)?,
            _ => return None,
        }
    }
    let delays = [after.min_delay_ms, after.max_delay_ms, after.slow_delay_ms];
    (delays.iter().all(|&delay| delay <= DELAY_CAP_MS) && after.min_delay_ms <= after.max_delay_ms)
        .then_some(after)
}

/// The five gauges, as a scrape of `registry` reads them.
fn gauges(registry: &prometheus::Registry) -> Vec<(String, f64)> {
    let mut gauges: Vec<_> = registry
        .gather()
        .iter()
        .filter(|family| {
            family.name().starts_with("myapp_workload_") && !family.name().ends_with("_total")
        })
        .map(|family| {
            (
                family.name().to_string(),
                family.get_metric()[0].get_gauge().value(),
            )
        })
        .collect();
    gauges.sort_by(|a, b| a.0.cmp(&b.0));
    gauges
}

/// The gauges that `settings` must show, in base units, sorted by name.
fn gauges_of(settings: Settings) -> Vec<(String, f64)> {
    [
        ("myapp_workload_error_rate", settings.error_rate),
        (
            "myapp_workload_max_delay_seconds",
            settings.max_delay_ms as f64 / 1000.0,
        ),
        (
            "myapp_workload_min_delay_seconds",
            settings.min_delay_ms as f64 / 1000.0,
        ),
        (
            "myapp_workload_slow_delay_seconds",
            settings.slow_delay_ms as f64 / 1000.0,
        ),
        ("myapp_workload_slow_rate", settings.slow_rate),
    ]
    .map(|(name, value)| (name.to_string(), value))
    .to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_workload_change_is_taken_whole_or_not_at_all_and_the_gauges_show_what_is_in_force(
        changes in prop::collection::vec(prop::collection::btree_map(key(), value(), 0..5), 1..5)
    ) {
        let registry = prometheus::Registry::new();
        let workload = Workload::new(BEFORE, DELAY_CAP_MS, WorkloadMetrics::register(&registry).unwrap());
        let mut in_force = BEFORE;
        for change in changes {
            let change: Vec<_> = change.into_iter().collect();
            let body = Value::Object(change.iter().map(|(key, (value, _, _))| (key.to_string(), value.clone())).collect());
            let want = expected(in_force, &change);
            let got = workload.change(&body, Source::Api, &"proptest");
            prop_assert_eq!(got.as_ref().ok(), want.as_ref(), "{}", body);
            if let Some(after) = want {
                in_force = after;
            }
            prop_assert_eq!(workload.settings(), in_force);
            prop_assert_eq!(gauges(&registry), gauges_of(in_force));
            // -0.0 is taken as 0.0: no gauge shows -0.
            prop_assert!(gauges(&registry).iter().all(|(_, value)| value.is_sign_positive()));
        }
    }
}

// --- the bearer token and basic auth ---------------------------------------------------

const TOKEN: &str = "s3cret-Token.42";

/// An `Authorization` header for the token: its scheme and credentials, and
/// whether it must pass (the scheme is case-insensitive; the token is exact,
/// white space around it aside).
fn bearer() -> impl Strategy<Value = (String, bool)> {
    let scheme = prop::sample::select(vec![
        ("Bearer", true),
        ("bearer", true),
        ("BEARER", true),
        ("bEaReR", true),
        ("Basic", false),
        ("Bearer:", false),
        ("Token", false),
        ("", false),
    ]);
    let credentials = prop_oneof![
        Just((TOKEN.to_string(), true)),
        Just((format!(" {TOKEN}\t"), true)),
        (1..TOKEN.len()).prop_map(|cut| (TOKEN[..cut].to_string(), false)),
        "[!-~]{1,3}".prop_map(|more| (format!("{TOKEN}{more}"), false)),
        (0..TOKEN.len(), "[!-~]").prop_filter_map("a different byte", |(at, byte)| {
            let mut changed = TOKEN.to_string();
            changed.replace_range(at..at + 1, &byte);
            (changed != TOKEN).then_some((changed, false))
        }),
        ".{0,30}".prop_filter_map("not the token", |text| (text.trim() != TOKEN)
            .then_some((text, false))),
    ];
    (scheme, credentials).prop_map(|((scheme, scheme_ok), (credentials, token_ok))| {
        (format!("{scheme} {credentials}"), scheme_ok && token_ok)
    })
}

// Made with Python's bcrypt, not with the crate under test:
// bcrypt.hashpw(b"s3cret pass:word", bcrypt.gensalt(4)).
const HASH: &str = "$2b$04$WkXw7pReZf.zmT7xnAY/QOEWTvWaQISs/cVHjYRTKocL1O1jc0IAy";
const PASSWORD: &str = "s3cret pass:word";

/// `user:password` for basic auth, and whether it must pass.
fn user_and_password() -> impl Strategy<Value = (String, bool)> {
    let user = prop::sample::select(vec![
        "prometheus",
        "Prometheus",
        "prometheus ",
        "nobody",
        "",
    ]);
    let password = prop_oneof![
        Just(PASSWORD.to_string()),
        (0..PASSWORD.len()).prop_map(|cut| PASSWORD[..cut].to_string()),
        ".{1,3}".prop_map(|more| format!("{PASSWORD}{more}")),
        Just(PASSWORD.to_uppercase()),
        Just(format!("{PASSWORD}{}", "x".repeat(72))),
        ".{0,20}",
    ];
    (user, password).prop_map(|(user, password)| {
        let pass = user == "prometheus" && password == PASSWORD;
        (format!("{user}:{password}"), pass)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn only_the_exact_token_passes((authorization, pass) in bearer(), noise in ".{0,60}") {
        let file = TokenFile::new("proptest-token", TOKEN);
        prop_assert_eq!(file.token.authorizes(Some(&authorization)), pass, "{:?}", authorization);
        prop_assert!(!file.token.authorizes(Some(&noise)));
    }

    #[test]
    fn only_the_exact_user_and_password_pass_basic_auth(
        (credentials, pass) in user_and_password(),
        scheme in prop::sample::select(vec![("Basic", true), ("basic", true), ("BASIC", true), ("Bearer", false)]),
        noise in ".{0,60}",
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let users = BasicAuthUsers::new(BTreeMap::from([("prometheus".to_string(), HASH.to_string())])).unwrap();
        let (scheme, scheme_ok) = scheme;
        let authorization = format!("{scheme} {}", STANDARD.encode(&credentials));
        prop_assert_eq!(runtime.block_on(users.authorize(Some(&authorization))), pass && scheme_ok, "{:?}", credentials);
        prop_assert!(!runtime.block_on(users.authorize(Some(&noise))));
    }
}

// --- the web configuration file -------------------------------------------------------

/// What no error may show: it stands for a password, a hash, a key or what
/// a file holds.
const SECRET: &str = "SECRET-d41d8cd98f00";

/// A `*_file` value: the name of a file that holds the secret (garbage, or
/// in a PEM block), of a file that does not exist, or PEM text in place of
/// a name.
fn file_value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "garbage.pem".to_string(),
        "pem-garbage.pem".to_string(),
        "missing.pem".to_string(),
        format!("|\n    -----BEGIN PRIVATE KEY-----\n    {SECRET}\n    -----END PRIVATE KEY-----"),
        format!("-----BEGIN PRIVATE KEY----- {SECRET} -----END PRIVATE KEY-----"),
    ])
}

/// A `basic_auth_users` value holding the secret: hashes, a scalar, a list.
fn users_value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        format!("\n  prometheus: {SECRET}"),
        format!("\n  prometheus: $2b$99${SECRET}"),
        format!("\n  prometheus: {HASH}\n  prometheus: {SECRET}"),
        format!("\n  prometheus: [{SECRET}]"),
        format!("\n  prometheus: {{{SECRET}: 1}}"),
        format!(" {SECRET}"),
        format!(" [{SECRET}]"),
    ])
}

/// A `tls_server_config` section whose files hold or are the secret.
fn tls() -> impl Strategy<Value = String> {
    (
        file_value(),
        file_value(),
        prop::sample::select(vec![
            "",
            "RequireAndVerifyClientCert",
            "VerifyClientCertIfGiven",
        ]),
        file_value(),
    )
        .prop_map(|(cert, key, auth, ca)| {
            let mut tls = format!("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n");
            if !auth.is_empty() {
                tls += &format!("  client_auth_type: {auth}\n  client_ca_file: {ca}\n");
            }
            tls
        })
}

/// A web configuration file in which every value is or leads to the secret.
fn web_config() -> impl Strategy<Value = String> {
    prop_oneof![
        tls(),
        users_value().prop_map(|users| format!("basic_auth_users:{users}\n")),
        (tls(), users_value()).prop_map(|(tls, users)| format!("{tls}basic_auth_users:{users}\n")),
        Just(format!("{SECRET}\n")),
        Just(format!("tls_server_config: {SECRET}\n")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_web_config_error_holds_a_secret(yaml in web_config()) {
        let dir = std::env::temp_dir().join(format!("myapp-test-{}-proptest-web", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("garbage.pem"), format!("{SECRET}\n")).unwrap();
        std::fs::write(
            dir.join("pem-garbage.pem"),
            format!("-----BEGIN CERTIFICATE-----\n{SECRET}\n-----END CERTIFICATE-----\n"),
        )
        .unwrap();
        let path = dir.join("web.yml");
        std::fs::write(&path, &yaml).unwrap();
        let result = WebConfig::read(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        // Every such file is refused: none names a usable certificate or hash.
        let error = result.expect_err(&yaml).to_string();
        prop_assert!(!error.contains(SECRET), "{}\n-> {}", yaml, error);
        prop_assert!(!error.contains('\n'), "{}\n-> {}", yaml, error);
    }
}
