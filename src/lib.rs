//! myapp: a poem service that simulates work on `GET /work` and exposes
//! Prometheus metrics about it on `GET /metrics`.
//!
//! `startup` builds the application: every route and the whole request stack
//! in one place. Its parts:
//!
//! | module | what it owns |
//! | --- | --- |
//! | `server` | the HTTP server and its guards (limits, drain, TLS, auth) |
//! | `metrics` | the metrics, their registration and `GET /metrics` |
//! | `workload` | the workload, `GET /work` and `/admin/workload` |
//! | `telemetry` | logs, the request line, trace context |
//! | `load` | `myapp load`: requests at a constant rate, and their summary |
//! | `config` | the flags and their env twins |
//! | `scenario` | `myapp scenario`: an incident as a file, applied to replicas |
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod config;
pub mod load;
pub mod metrics;
pub mod scenario;
pub mod server;
pub mod startup;
pub mod telemetry;
pub mod workload;
