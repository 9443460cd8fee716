//! Wire types of the hubkey API, which is Docker Hub's personal-access-token API plus a few
//! documented extensions (the events feed, usage, the token state).
//!
//! This crate owns the vocabulary shared by the server, the client and the desktop app:
//! request and response bodies, [`Scope`], [`Origin`], the token format ([`token`]) and the
//! error bodies, and the [`clock`] both sides read `now` from. It performs no I/O.

pub mod body;
pub mod clock;
pub mod error;
pub mod scope;
pub mod token;

pub use body::*;
pub use error::{ErrorBody, ErrorCode, RegistryErrorBody, ValidationErrorBody};
pub use scope::{Scope, ScopeParseError};
pub use token::{PatParseError, PlainToken, TokenDigest};
