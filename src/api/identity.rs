//! Client identity: the client certificate of the TLS connection mapped to a configured client
//! and role (by SHA-256 fingerprint, or by subject and issuer — never by CN alone).

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use openssl::hash::MessageDigest;
use openssl::x509::{X509NameRef, X509Ref};
use secrecy::{ExposeSecret, SecretString};

use super::errors::ApiError;
use crate::config::{normalise_fingerprint, ClientSettings, Role};
use crate::domain::Abi;

/// A configured client, as resolved from its certificate.
#[derive(Debug)]
pub struct ClientIdentity {
    /// The client's name (logs, audit columns).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its ABI (acquirers).
    pub abi: Option<Abi>,
    subscription_key: Option<SecretString>,
}

/// What the TLS layer saw of the peer certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCert {
    /// Lower-case hex SHA-256 of the DER certificate.
    pub fingerprint: String,
    /// Subject DN, RFC 2253.
    pub subject: String,
    /// Issuer DN, RFC 2253.
    pub issuer: String,
}

impl PeerCert {
    /// Reads the identity fields of a certificate.
    pub fn from_x509(cert: &X509Ref) -> Result<Self, openssl::error::ErrorStack> {
        Ok(Self {
            fingerprint: hex::encode(cert.digest(MessageDigest::sha256())?),
            subject: rfc2253(cert.subject_name()),
            issuer: rfc2253(cert.issuer_name()),
        })
    }
}

/// Formats a DN as RFC 2253 (last RDN first, `,`-separated, special characters escaped), the
/// form `openssl x509 -nameopt RFC2253` prints.
pub fn rfc2253(name: &X509NameRef) -> String {
    let mut parts: Vec<String> = name
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={}", escape_dn_value(&value))
        })
        .collect();
    parts.reverse();
    parts.join(",")
}

fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The identity a connection resolved to at handshake (`None`: valid certificate, no client).
#[derive(Clone, Debug)]
pub struct ConnIdentity(pub Option<Arc<ClientIdentity>>);

/// Every configured client, indexed for lookup at connection time.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    by_fingerprint: HashMap<String, Arc<ClientIdentity>>,
    by_dn: HashMap<(String, String), Arc<ClientIdentity>>,
}

impl ClientRegistry {
    /// Indexes the `[[clients]]` of the configuration (already validated).
    pub fn new(clients: &[ClientSettings]) -> Self {
        let mut reg = Self::default();
        for c in clients {
            let id = Arc::new(ClientIdentity {
                name: c.name.clone(),
                role: c.role,
                abi: c.abi.as_deref().and_then(|a| Abi::parse(a).ok()),
                subscription_key: c.subscription_key.clone(),
            });
            if let Some(fp) = c
                .fingerprint_sha256
                .as_deref()
                .and_then(normalise_fingerprint)
            {
                reg.by_fingerprint.insert(fp, id.clone());
            }
            if let (Some(s), Some(i)) = (&c.subject, &c.issuer) {
                reg.by_dn.insert((s.clone(), i.clone()), id);
            }
        }
        reg
    }

    /// The client a certificate maps to.
    pub fn identify(&self, cert: &PeerCert) -> Option<Arc<ClientIdentity>> {
        self.by_fingerprint
            .get(&cert.fingerprint)
            .or_else(|| self.by_dn.get(&(cert.subject.clone(), cert.issuer.clone())))
            .cloned()
    }
}

/// A set of roles an endpoint is open to.
pub trait Roles {
    /// The roles.
    const ROLES: &'static [Role];
}

/// The authenticated caller of an endpoint open to the roles `R`: extraction fails with 403 for
/// an unmapped certificate or another role, 401 for a wrong subscription key.
pub struct Caller<R: Roles> {
    /// The client.
    pub identity: Arc<ClientIdentity>,
    _roles: PhantomData<R>,
}

impl<R: Roles> Caller<R> {
    /// The client's name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// The client's role.
    pub fn role(&self) -> Role {
        self.identity.role
    }
}

/// Resolves and authenticates the caller of a request (any role).
pub fn authenticate(req: &HttpRequest) -> Result<Arc<ClientIdentity>, ApiError> {
    let identity = req
        .conn_data::<ConnIdentity>()
        .and_then(|c| c.0.clone())
        .ok_or_else(|| ApiError::forbidden("client certificate is not mapped to a client"))?;
    if let Some(expected) = &identity.subscription_key {
        let given = req
            .headers()
            .get("Ocp-Apim-Subscription-Key")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let expected = expected.expose_secret().as_bytes();
        // memcmp::eq is constant-time but needs equal lengths (a length mismatch leaks nothing
        // useful: keys have a fixed length).
        if given.len() != expected.len() || !openssl::memcmp::eq(given, expected) {
            return Err(ApiError::bad_subscription_key());
        }
    }
    Ok(identity)
}

impl<R: Roles> FromRequest for Caller<R> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|identity| {
            if R::ROLES.contains(&identity.role) {
                Ok(Caller {
                    identity,
                    _roles: PhantomData,
                })
            } else {
                Err(ApiError::forbidden(
                    "this endpoint is not open to the client's role",
                ))
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_values_are_escaped_as_rfc2253_says() {
        assert_eq!(escape_dn_value("tkm dev"), "tkm dev");
        assert_eq!(escape_dn_value("a,b"), "a\\,b");
        assert_eq!(escape_dn_value(" x "), "\\ x\\ ");
        assert_eq!(escape_dn_value("#1"), "\\#1");
    }

    #[test]
    fn maps_by_fingerprint_or_by_subject_and_issuer() {
        let clients: Vec<ClientSettings> = serde_json::from_value(serde_json::json!([
            {"name": "a", "role": "io", "fingerprint_sha256": "AA:".repeat(31) + "AA"},
            {"name": "b", "role": "admin", "subject": "CN=b", "issuer": "CN=ca"}
        ]))
        .unwrap();
        let reg = ClientRegistry::new(&clients);
        let by_fp = PeerCert {
            fingerprint: "aa".repeat(32),
            subject: "CN=x".into(),
            issuer: "CN=y".into(),
        };
        assert_eq!(reg.identify(&by_fp).unwrap().name, "a");
        let by_dn = PeerCert {
            fingerprint: "bb".repeat(32),
            subject: "CN=b".into(),
            issuer: "CN=ca".into(),
        };
        assert_eq!(reg.identify(&by_dn).unwrap().role, Role::Admin);
        let same_cn_other_issuer = PeerCert {
            issuer: "CN=rogue".into(),
            ..by_dn
        };
        assert!(reg.identify(&same_cn_other_issuer).is_none());
    }
}
