use serde_json::Value;

use crate::helpers::{work, TestApp};

#[tokio::test]
async fn work_answers_200_with_the_delay_it_slept() {
    let app = TestApp::spawn(work(5, 15, 0.0)).await;
    for _ in 0..20 {
        let response = app.get("/work").await;
        response.assert_status_is_ok();
        response.assert_content_type("application/json; charset=utf-8");
        let body: Value = response.json().await.value().deserialize();
        let delay = body["delay_ms"].as_u64().expect("delay_ms is a number");
        assert!((5..=15).contains(&delay), "delay {delay} outside [5, 15]");
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    }
}

#[tokio::test]
async fn work_answers_500_with_an_error_message_at_error_rate_one() {
    let app = TestApp::spawn(work(3, 3, 1.0)).await;
    for _ in 0..10 {
        let response = app.get("/work").await;
        response.assert_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body: Value = response.json().await.value().deserialize();
        assert_eq!(
            body,
            serde_json::json!({"delay_ms": 3, "error": "simulated failure"})
        );
    }
}

#[tokio::test]
async fn both_delay_bounds_are_reached() {
    let app = TestApp::spawn(work(0, 1, 0.0)).await;
    let mut seen = [false; 2];
    for _ in 0..200 {
        let body: Value = app.get("/work").await.json().await.value().deserialize();
        seen[body["delay_ms"].as_u64().unwrap() as usize] = true;
    }
    assert_eq!(seen, [true, true], "both 0 and 1 ms are drawn in 200 tries");
}

#[tokio::test]
async fn error_rate_splits_the_answers() {
    let app = TestApp::spawn(work(0, 0, 0.5)).await;
    let mut errors = 0;
    for _ in 0..1000 {
        if app.get("/work").await.0.status() == 500 {
            errors += 1;
        }
    }
    // Binomial(1000, 0.5): 400..600 holds with probability 1 - 1e-9.
    assert!((400..=600).contains(&errors), "{errors} errors in 1000");
}
