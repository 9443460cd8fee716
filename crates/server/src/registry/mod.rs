//! The registry token service: hubkeyd as the token server (`auth.token.realm`) of a CNCF
//! distribution registry, per the distribution token-auth spec.
//!
//! [`access`] decides what a credential may do; [`keys`] holds the signing keys; this module
//! signs the token and writes the registry's configuration.

pub mod access;
pub mod keys;

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::Serialize;

use crate::error::{Error, Result, SetupError};
use access::ResourceActions;
use keys::Signer;

/// How long a registry token is valid (clients need at least 60 s).
pub const TOKEN_TTL: Duration = Duration::minutes(5);
/// The `iss` of registry tokens, matched by the registry's `auth.token.issuer`.
pub const ISSUER: &str = "hubkeyd";
/// The service name hubkeyd's generated registry configuration uses.
pub const DEFAULT_SERVICE: &str = "hubkey-registry";

/// Signs registry tokens with the current signing key.
#[derive(Debug)]
pub struct TokenIssuer {
    signer: Signer,
    /// base64url of the JOSE header, the same for every token of this key.
    encoded_header: String,
}

#[derive(Serialize)]
struct Header<'a> {
    typ: &'static str,
    alg: &'static str,
    kid: &'a str,
    x5c: [&'a str; 1],
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'static str,
    sub: &'a str,
    /// A plain string: distribution 2.8 does not accept an array here.
    aud: &'a str,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: String,
    access: &'a [ResourceActions],
}

/// A signed registry token and its lifetime.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    pub issued_at: DateTime<Utc>,
}

impl TokenIssuer {
    pub fn new(signer: Signer) -> Result<Self> {
        let header = Header {
            typ: "JWT",
            alg: "ES256",
            kid: &signer.kid,
            x5c: [&signer.x5c],
        };
        let encoded_header = base64url_json(&header)?;
        Ok(TokenIssuer {
            signer,
            encoded_header,
        })
    }

    /// Signs a token for `subject` (empty for anonymous) at `service` with `access`.
    pub fn issue(
        &self,
        subject: &str,
        service: &str,
        access: &[ResourceActions],
        now: DateTime<Utc>,
    ) -> Result<IssuedToken> {
        let mut jti = [0u8; 16];
        OsRng.fill_bytes(&mut jti);
        let claims = Claims {
            iss: ISSUER,
            sub: subject,
            aud: service,
            exp: (now + TOKEN_TTL).timestamp(),
            // A little slack for registries whose clock runs behind ours.
            nbf: (now - Duration::seconds(10)).timestamp(),
            iat: now.timestamp(),
            jti: data_encoding::HEXLOWER.encode(&jti),
            access,
        };
        let signing_input = format!("{}.{}", self.encoded_header, base64url_json(&claims)?);
        let signature = self.signer.sign(signing_input.as_bytes())?;
        Ok(IssuedToken {
            token: format!(
                "{signing_input}.{}",
                data_encoding::BASE64URL_NOPAD.encode(&signature)
            ),
            expires_in: u64::try_from(TOKEN_TTL.num_seconds()).unwrap_or(300),
            issued_at: now,
        })
    }
}

fn base64url_json(value: &impl Serialize) -> Result<String> {
    let json = serde_json::to_vec(value)
        .map_err(|err| Error::Internal(format!("encoding a registry token: {err}")))?;
    Ok(data_encoding::BASE64URL_NOPAD.encode(&json))
}

/// Writes a distribution registry configuration that trusts hubkeyd at `hub_url` into
/// `out`: `config.yml`, the certificate bundle `hubkeyd-certs.pem`, and `storage/`.
pub fn write_registry_config(
    out: &Path,
    hub_url: &str,
    registry_listen: &str,
    bundle: &str,
) -> Result<(), SetupError> {
    let io = |err: std::io::Error| SetupError::io(out.display(), err);
    std::fs::create_dir_all(out.join("storage")).map_err(io)?;
    let out = std::fs::canonicalize(out).map_err(io)?;
    let bundle_path = out.join("hubkeyd-certs.pem");
    // Replaced whole: a registry restarting meanwhile reads the old bundle or the new.
    keys::replace_file(&bundle_path, bundle)?;
    let mut secret = [0u8; 24];
    OsRng.fill_bytes(&mut secret);
    let config = format!(
        "# Written by `hubkeyd registry-config`: a CNCF distribution registry that trusts\n\
         # hubkeyd at {hub_url} for token authentication.\n\
         version: 0.1\n\
         log:\n  level: info\n  fields:\n    service: registry\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         http:\n  addr: {registry_listen}\n  secret: {secret}\n  headers:\n    X-Content-Type-Options: [nosniff]\n\
         auth:\n  token:\n    realm: {realm}\n    service: {DEFAULT_SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {bundle}\n",
        storage = yaml_string(&out.join("storage").display().to_string()),
        registry_listen = yaml_string(registry_listen),
        secret = data_encoding::HEXLOWER.encode(&secret),
        realm = yaml_string(&format!("{}/token", hub_url.trim_end_matches('/'))),
        bundle = yaml_string(&bundle_path.display().to_string()),
    );
    std::fs::write(out.join("config.yml"), config).map_err(io)
}

/// Refuses a hub URL whose scheme is not what hubkeyd serves: registry clients follow the
/// realm as written, and a plain `http://` realm in front of an https-only hubkeyd fails
/// every login (or, behind a proxy that also listens on http, sends passwords in clear).
pub fn check_realm_scheme(hub_url: &str, serves_tls: bool) -> Result<(), SetupError> {
    let is_https = hub_url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    if serves_tls && !is_https {
        return Err(SetupError::Usage(format!(
            "--hub-url {hub_url}: hubkeyd serves https (--tls-cert / HUBKEYD_TLS_CERT is set), so the token realm must be https://…"
        )));
    }
    Ok(())
}

/// A YAML double-quoted string (JSON's escaping is valid YAML).
fn yaml_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_claims_distribution_expects() {
        let dir = tempfile::tempdir().unwrap();
        let signer = keys::RegistryKeys::open(dir.path())
            .unwrap()
            .signer()
            .unwrap();
        let kid = signer.kid.clone();
        let issuer = TokenIssuer::new(signer).unwrap();
        let access = access::parse_scopes(&["repository:ann/app:pull"]).unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let issued = issuer
            .issue("ann", "hubkey-registry", &access, now)
            .unwrap();
        let parts: Vec<&str> = issued.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |part: &str| -> serde_json::Value {
            serde_json::from_slice(
                &data_encoding::BASE64URL_NOPAD
                    .decode(part.as_bytes())
                    .unwrap(),
            )
            .unwrap()
        };
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], kid);
        assert!(header["x5c"][0].as_str().unwrap().len() > 100);
        let claims = decode(parts[1]);
        assert_eq!(
            claims["aud"], "hubkey-registry",
            "aud must be a plain string"
        );
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["exp"], 1_800_000_300);
        assert!(claims["iat"].is_i64());
        assert_eq!(claims["access"][0]["type"], "repository");
        assert_eq!(
            data_encoding::BASE64URL_NOPAD
                .decode(parts[2].as_bytes())
                .unwrap()
                .len(),
            64
        );
    }

    #[test]
    fn an_http_realm_is_refused_when_hubkeyd_serves_https() {
        assert!(check_realm_scheme("https://hub.example:5080", true).is_ok());
        assert!(check_realm_scheme("HTTPS://hub.example", true).is_ok());
        assert!(check_realm_scheme("http://127.0.0.1:5080", false).is_ok());
        let err = check_realm_scheme("http://127.0.0.1:5080", true).unwrap_err();
        assert!(err.to_string().contains("must be https"), "{err}");
    }

    #[test]
    fn config_points_the_registry_at_hubkeyd() {
        let dir = tempfile::tempdir().unwrap();
        write_registry_config(
            dir.path(),
            "http://127.0.0.1:5080/",
            "127.0.0.1:5000",
            "PEM",
        )
        .unwrap();
        let config = std::fs::read_to_string(dir.path().join("config.yml")).unwrap();
        assert!(config.contains("realm: \"http://127.0.0.1:5080/token\""));
        assert!(config.contains("issuer: hubkeyd"));
        assert!(config.contains("addr: \"127.0.0.1:5000\""));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("hubkeyd-certs.pem")).unwrap(),
            "PEM"
        );
    }
}
