//! myapp: a poem service that simulates work on `GET /work` and exposes
//! Prometheus metrics about it on `GET /metrics`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod admin;
pub mod basic_auth;
pub mod config;
pub mod exposition;
pub mod health;
pub mod metrics;
pub mod metrics_token;
pub mod open_files;
pub mod process_metrics;
pub mod request_log;
pub mod request_metrics;
pub mod runtime_metrics;
pub mod server;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod trace_context;
pub mod web_config;
pub mod work;
pub mod workload;
