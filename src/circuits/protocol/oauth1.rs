//! OAuth 1.0a with `RSA-SHA256` and `oauth_body_hash`, as Mastercard's APIs want it.
//!
//! The signature base string is `METHOD&enc(base URI)&enc(sorted, encoded parameters)` over the
//! query parameters and the `oauth_*` parameters (RFC 5849 §3.4.1); the body is covered by
//! `oauth_body_hash` = base64(SHA-256(body)), computed over the bytes actually sent.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Private, Public};
use openssl::sign::{Signer, Verifier};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use url::Url;

use super::ProtocolError;

/// RFC 3986 unreserved characters stay, everything else is encoded.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The signature method we produce and accept.
pub const SIGNATURE_METHOD: &str = "RSA-SHA256";

/// RFC 3986 percent-encoding.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, RFC3986).to_string()
}

/// base64(SHA-256(body)).
pub fn body_hash(body: &[u8]) -> Result<String, ProtocolError> {
    let digest =
        hash(MessageDigest::sha256(), body).map_err(|_| ProtocolError::Crypto("body hash"))?;
    Ok(STANDARD.encode(digest))
}

/// The `oauth_*` parameters of one request (without the signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthParams {
    /// `oauth_consumer_key`.
    pub consumer_key: String,
    /// `oauth_nonce`.
    pub nonce: String,
    /// `oauth_timestamp`, seconds.
    pub timestamp: i64,
    /// `oauth_body_hash`.
    pub body_hash: String,
}

impl OAuthParams {
    fn pairs(&self) -> Vec<(String, String)> {
        vec![
            ("oauth_body_hash".into(), self.body_hash.clone()),
            ("oauth_consumer_key".into(), self.consumer_key.clone()),
            ("oauth_nonce".into(), self.nonce.clone()),
            ("oauth_signature_method".into(), SIGNATURE_METHOD.into()),
            ("oauth_timestamp".into(), self.timestamp.to_string()),
            ("oauth_version".into(), "1.0".into()),
        ]
    }
}

/// Splits `url` into its base string URI (RFC 5849 §3.4.1.2: scheme and host lower-cased, a
/// default port dropped, no query or fragment; the path as sent) and its decoded query
/// parameters (§3.4.1.3.1: `application/x-www-form-urlencoded`).
fn base_uri_and_query(url: &str) -> Result<(String, Vec<(String, String)>), ProtocolError> {
    let url = Url::parse(url).map_err(|_| ProtocolError::Malformed("URL"))?;
    let host = url.host_str().ok_or(ProtocolError::Malformed("URL"))?;
    // `port()` is `None` for the scheme's default port, which the base URI leaves out.
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let base = format!("{}://{host}{port}{}", url.scheme(), url.path());
    let params = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Ok((base, params))
}

/// The signature base string of a request.
pub fn base_string(method: &str, url: &str, oauth: &OAuthParams) -> Result<String, ProtocolError> {
    base_string_as(method, url, oauth, true)
}

/// The base string; `encode_oauth_values = false` gives the form Mastercard's own signer
/// libraries build (their `oauth_*` values go in unencoded, as they send them in the header).
fn base_string_as(
    method: &str,
    url: &str,
    oauth: &OAuthParams,
    encode_oauth_values: bool,
) -> Result<String, ProtocolError> {
    let (base_uri, params) = base_uri_and_query(url)?;
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (encode(k), encode(v)))
        .chain(oauth.pairs().into_iter().map(|(k, v)| {
            let v = if encode_oauth_values { encode(&v) } else { v };
            (k, v)
        }))
        .collect();
    encoded.sort();
    let normalized = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    Ok(format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(&base_uri),
        encode(&normalized)
    ))
}

/// base64(RSA-SHA256 PKCS#1 v1.5 signature of the base string).
pub fn sign(base_string: &str, key: &PKey<Private>) -> Result<String, ProtocolError> {
    let fail = |_| ProtocolError::Crypto("OAuth signature");
    let mut signer = Signer::new(MessageDigest::sha256(), key).map_err(fail)?;
    signer.update(base_string.as_bytes()).map_err(fail)?;
    Ok(STANDARD.encode(signer.sign_to_vec().map_err(fail)?))
}

/// The `Authorization` header value for a request with `body`.
pub fn authorization_header(
    method: &str,
    url: &str,
    body: &[u8],
    consumer_key: &str,
    nonce: &str,
    timestamp: i64,
    key: &PKey<Private>,
) -> Result<String, ProtocolError> {
    let oauth = OAuthParams {
        consumer_key: consumer_key.into(),
        nonce: nonce.into(),
        timestamp,
        body_hash: body_hash(body)?,
    };
    let signature = sign(&base_string(method, url, &oauth)?, key)?;
    let mut parts: Vec<String> = oauth
        .pairs()
        .into_iter()
        .map(|(k, v)| format!("{k}=\"{}\"", encode(&v)))
        .collect();
    parts.push(format!("oauth_signature=\"{}\"", encode(&signature)));
    Ok(format!("OAuth {}", parts.join(",")))
}

/// A parsed `Authorization: OAuth …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The `oauth_*` parameters.
    pub params: OAuthParams,
    /// `oauth_signature`, base64.
    pub signature: String,
}

/// Parses an `Authorization` header; every required parameter must be present and well formed.
pub fn parse_authorization(header: &str) -> Result<SignedRequest, ProtocolError> {
    let rest = header
        .strip_prefix("OAuth ")
        .ok_or(ProtocolError::Malformed("Authorization scheme"))?;
    let mut found = std::collections::HashMap::new();
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(ProtocolError::Malformed("Authorization parameter"))?;
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or(ProtocolError::Malformed("Authorization parameter"))?;
        let v = percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| ProtocolError::Malformed("Authorization parameter"))?;
        found.insert(k.to_string(), v.into_owned());
    }
    let mut take = |name: &'static str| found.remove(name).ok_or(ProtocolError::Malformed(name));
    if take("oauth_signature_method")? != SIGNATURE_METHOD {
        return Err(ProtocolError::Unexpected("oauth_signature_method"));
    }
    if take("oauth_version")? != "1.0" {
        return Err(ProtocolError::Unexpected("oauth_version"));
    }
    let timestamp = take("oauth_timestamp")?
        .parse()
        .map_err(|_| ProtocolError::Malformed("oauth_timestamp"))?;
    Ok(SignedRequest {
        params: OAuthParams {
            consumer_key: take("oauth_consumer_key")?,
            nonce: take("oauth_nonce")?,
            timestamp,
            body_hash: take("oauth_body_hash")?,
        },
        signature: take("oauth_signature")?,
    })
}

/// Checks the body hash against `body` and the signature against `key`.
pub fn verify(
    request: &SignedRequest,
    method: &str,
    url: &str,
    body: &[u8],
    key: &PKey<Public>,
) -> Result<(), ProtocolError> {
    verify_forms(request, method, url, body, key, &[true])
}

/// As [`verify`], also accepting the base string of Mastercard's own signer libraries, as the
/// real gateway does (the simulator serves systems that sign with those libraries).
pub fn verify_as_gateway(
    request: &SignedRequest,
    method: &str,
    url: &str,
    body: &[u8],
    key: &PKey<Public>,
) -> Result<(), ProtocolError> {
    verify_forms(request, method, url, body, key, &[true, false])
}

fn verify_forms(
    request: &SignedRequest,
    method: &str,
    url: &str,
    body: &[u8],
    key: &PKey<Public>,
    forms: &[bool],
) -> Result<(), ProtocolError> {
    if request.params.body_hash != body_hash(body)? {
        return Err(ProtocolError::Invalid("oauth_body_hash"));
    }
    let signature = STANDARD
        .decode(&request.signature)
        .map_err(|_| ProtocolError::Malformed("oauth_signature"))?;
    let fail = |_| ProtocolError::Crypto("OAuth verify");
    for encode_values in forms {
        let base = base_string_as(method, url, &request.params, *encode_values)?;
        let mut verifier = Verifier::new(MessageDigest::sha256(), key).map_err(fail)?;
        verifier.update(base.as_bytes()).map_err(fail)?;
        if verifier.verify(&signature).unwrap_or(false) {
            return Ok(());
        }
    }
    Err(ProtocolError::Invalid("oauth_signature"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuits::protocol::{generate_rsa, public_of};

    #[test]
    fn base_string_normalises_uri_and_sorts_parameters() -> Result<(), ProtocolError> {
        let oauth = OAuthParams {
            consumer_key: "ck".into(),
            nonce: "n0nce".into(),
            timestamp: 1_111_111_111,
            body_hash: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
        };
        let base = base_string(
            "post",
            "HTTPS://Api.Example.com:443/a/b?z=1&a=x%20y",
            &oauth,
        )?;
        assert_eq!(
            base,
            "POST&https%3A%2F%2Fapi.example.com%2Fa%2Fb&a%3Dx%2520y%26\
             oauth_body_hash%3D47DEQpj8HBSa%252B%252FTImW%252B5JCeuQeRkm5NMpJWZG3hSuFU%253D%26\
             oauth_consumer_key%3Dck%26oauth_nonce%3Dn0nce%26oauth_signature_method%3DRSA-SHA256%26\
             oauth_timestamp%3D1111111111%26oauth_version%3D1.0%26z%3D1"
        );
        Ok(())
    }

    #[test]
    fn base_uris_and_query_parameters_are_read_with_the_url_crate() -> Result<(), ProtocolError> {
        let (base, params) = base_uri_and_query("HTTPS://[::1]:443?b=x+y&a=%7E&a=1#f")?;
        assert_eq!(base, "https://[::1]/");
        assert_eq!(
            params,
            [("b", "x y"), ("a", "~"), ("a", "1")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let (base, _) = base_uri_and_query("http://Host.Example:8080/p%2Fq/./r")?;
        assert_eq!(base, "http://host.example:8080/p%2Fq/r");
        for bad in ["/relative/path", "https://", "not a url"] {
            assert_eq!(
                base_uri_and_query(bad).err(),
                Some(ProtocolError::Malformed("URL")),
                "{bad}"
            );
        }
        Ok(())
    }

    #[test]
    fn the_gateway_also_accepts_mastercard_library_signatures() -> Result<(), ProtocolError> {
        let key = generate_rsa(2048)?;
        let public = public_of(&key)?;
        let url = "https://api.example.com/par?x=1";
        let oauth = OAuthParams {
            consumer_key: "ck".into(),
            nonce: "n".into(),
            timestamp: 7,
            body_hash: body_hash(b"{}")?,
        };
        // The libraries' form: oauth values unencoded inside the parameter string.
        let library = base_string_as("POST", url, &oauth, false)?;
        assert!(library
            .contains("oauth_body_hash%3DRBNvo1WzZ4oRRq0W9%2BhknpT7T8If536DEMBg9hyq%2F4o%3D"));
        let request = SignedRequest {
            params: oauth,
            signature: sign(&library, &key)?,
        };
        assert_eq!(
            verify(&request, "POST", url, b"{}", &public),
            Err(ProtocolError::Invalid("oauth_signature"))
        );
        verify_as_gateway(&request, "POST", url, b"{}", &public)?;
        Ok(())
    }

    #[test]
    fn header_round_trip_and_tamper() -> Result<(), ProtocolError> {
        let key = generate_rsa(2048)?;
        let public = public_of(&key)?;
        let url = "https://127.0.0.1:8543/par/x";
        let header = authorization_header("POST", url, b"{}", "ck", "abc", 42, &key)?;
        let parsed = parse_authorization(&header)?;
        assert_eq!(parsed.params.consumer_key, "ck");
        verify(&parsed, "POST", url, b"{}", &public)?;
        assert_eq!(
            verify(&parsed, "POST", url, b"{ }", &public),
            Err(ProtocolError::Invalid("oauth_body_hash"))
        );
        let mut other = parsed.clone();
        other.params.nonce = "abd".into();
        assert_eq!(
            verify(&other, "POST", url, b"{}", &public),
            Err(ProtocolError::Invalid("oauth_signature"))
        );
        Ok(())
    }
}
