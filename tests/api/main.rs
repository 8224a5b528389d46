//! Integration tests: the app in-process, on a real socket, and as the real binary.
mod binary;
mod concurrency;
mod exposition;
mod health;
mod helpers;
mod metrics;
mod openapi;
mod shutdown;
mod work;
