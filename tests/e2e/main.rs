//! Cross-component tests. One binary (each file under tests/ would link another); each
//! module drives the product the way its users do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod account_safety;
mod cli_terminal;
mod credential_helper;
mod desktop_core;
mod device_page;
mod device_sign_in;
mod faults;
mod gui;
mod package;
mod registry;
mod watcher;
mod wine;
