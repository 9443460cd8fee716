//! Harness for the cross-component tests: a real hubkeyd on 127.0.0.1:0 with a temporary
//! SQLite file, a real CNCF distribution registry configured by `hubkeyd registry-config`, a
//! tiny OCI image written by hand, and the real clients (skopeo, podman, docker) run as
//! processes. Everything started here is stopped by PID when its handle drops, also when a
//! test fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cargo_build;
pub mod desktop;
pub mod device_form;
pub mod faults;
pub mod keyring;
pub mod oci;
pub mod pages;
pub mod registry;
pub mod server;
pub mod tools;
pub mod tray;
pub mod wine;

pub use oci::OciImage;
pub use registry::Registry;
pub use server::Hubkeyd;
pub use tools::{CommandOutput, Docker, Podman, Skopeo};
