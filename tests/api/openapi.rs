use serde_json::Value;

use crate::helpers::{work, TestApp};

#[test]
fn committed_spec_matches_the_code() {
    let committed = include_str!("../../openapi/openapi.json");
    assert!(
        committed.trim_end() == myapp::startup::openapi_json().trim_end(),
        "openapi/openapi.json is stale: regenerate it with `just openapi` \
         (cargo run -- openapi > openapi/openapi.json)"
    );
}

#[tokio::test]
async fn spec_documents_every_operation_and_work_answers() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let spec: Value = app
        .get("/openapi.json")
        .await
        .json()
        .await
        .value()
        .deserialize();
    let paths = spec["paths"].as_object().unwrap();
    let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "/admin/workload",
            "/healthz",
            "/metrics",
            "/readyz",
            "/work"
        ]
    );
    assert_eq!(
        sorted_keys(&spec["paths"]["/admin/workload"]),
        ["get", "put"]
    );
    let parameters: Vec<(&str, &str)> = spec["paths"]["/work"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["schema"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(parameters, [("delay_ms", "integer"), ("fail", "boolean")]);
    let work = &spec["paths"]["/work"]["get"]["responses"];
    let codes = sorted_keys(work);
    assert_eq!(codes, ["200", "400", "500", "503"]);
    assert_eq!(
        work["503"]["headers"]["RETRY-AFTER"]["schema"]["type"],
        "integer"
    );
    assert_eq!(
        work["500"]["content"]["application/json; charset=utf-8"]["schema"]["$ref"],
        "#/components/schemas/WorkFailed"
    );
    let metrics = &spec["paths"]["/metrics"]["get"]["responses"];
    let codes = sorted_keys(metrics);
    assert_eq!(codes, ["200", "401", "406", "500"]);
    let mut formats: Vec<&str> = metrics["200"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    formats.sort();
    assert_eq!(
        formats,
        [
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
            "text/plain; version=0.0.4; charset=utf-8",
        ]
    );
    assert!(
        metrics["401"]["headers"]["WWW-AUTHENTICATE"].is_object(),
        "{metrics}"
    );
}

#[tokio::test]
async fn spec_is_served_as_yaml_and_swagger_ui_at_docs() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let yaml = app.get("/openapi.yaml").await;
    yaml.assert_status_is_ok();
    let text = yaml.0.into_body().into_string().await.unwrap();
    assert!(text.contains("/work:"), "{text}");
    let docs = app.get("/docs").await;
    docs.assert_status_is_ok();
    let html = docs.0.into_body().into_string().await.unwrap();
    assert!(html.contains("SwaggerUIBundle"), "{html}");
}

#[tokio::test]
async fn docs_paths_reach_the_docs_and_every_other_path_the_operations() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    for (path, status) in [
        ("/docs", 200),
        ("/docs/", 200),
        ("/docs/oauth-receiver.html", 200),
        ("/docs/missing", 404),
        ("/docsx", 404),
        ("/openapi.json", 200),
        ("/openapi.jsonx", 404),
        ("/openapi.yaml/", 404),
        ("/work", 200),
        ("/work/", 404),
        ("/healthz", 200),
        ("/", 404),
    ] {
        assert_eq!(app.get(path).await.0.status().as_u16(), status, "{path}");
    }
}

/// The keys of a JSON object, sorted.
fn sorted_keys(object: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    keys
}
