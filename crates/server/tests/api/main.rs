//! The one integration-test binary of hubkeyd (each file directly in `tests/` would link
//! another binary). Every test runs the real `hubkeyd` binary on 127.0.0.1:0 with its own
//! temporary data directory and drives it through `hubkey-client`, as the desktop app does.

// Test code may panic: a failed expectation is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_log;
mod auth;
mod change_table;
mod cli;
mod copy_store;
mod crash;
mod cross_site;
mod device;
mod events;
mod harness;
mod hostile;
mod instances;
mod key_rotation;
mod leaks;
mod limits;
mod metrics;
mod new_address;
mod openapi;
mod pg;
mod proxies;
mod pruning;
mod registry_scopes;
mod rotation;
mod secrets;
mod sessions;
mod shared_limits;
mod tls;
mod tokens;
mod two_factor;
