//! Integration tests: the app in-process, on a real socket, and as the real binary.
mod binary;
mod concurrency;
mod exactness;
mod exemplars;
mod exposition;
mod health;
mod helpers;
mod hostile;
mod metrics;
mod openapi;
mod overload;
mod process;
mod shutdown;
mod work;
