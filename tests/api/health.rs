use poem::http::StatusCode;

use crate::helpers::{work, TestApp};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    let response = app.get("/healthz").await;
    response.assert_status_is_ok();
    response.assert_text("ok").await;
}

#[tokio::test]
async fn readyz_turns_503_once_shutdown_begins() {
    let app = TestApp::spawn(work(0, 0, 0.0)).await;
    app.get("/readyz").await.assert_text("ready").await;
    app.state.shutdown.begin();
    let response = app.get("/readyz").await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    response.assert_text("shutting down").await;
    app.get("/healthz").await.assert_status_is_ok();
}
