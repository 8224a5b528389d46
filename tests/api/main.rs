//! Integration tests: the app in-process, on a real socket, and as the real binary.
mod binary;
mod concurrency;
mod exactness;
mod exposition;
mod health;
mod helpers;
mod hostile;
mod metrics;
mod open_files;
mod openapi;
mod overload;
mod rolling_update;
mod shutdown;
mod web_config;
mod work;
