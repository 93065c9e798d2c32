//! Amex's `Authorization: MAC` header: HMAC-SHA256 with the client secret over the body
//! (`bodyhash`) and over `ts\nnonce\nMETHOD\npath\nhost\nport\nbodyhash\n` (`mac`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::memcmp;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use super::ProtocolError;

/// base64(HMAC-SHA256(secret, data)).
pub fn hmac_b64(secret: &[u8], data: &[u8]) -> Result<String, ProtocolError> {
    let fail = |_| ProtocolError::Crypto("HMAC");
    let key = PKey::hmac(secret).map_err(fail)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key).map_err(fail)?;
    signer.update(data).map_err(fail)?;
    Ok(STANDARD.encode(signer.sign_to_vec().map_err(fail)?))
}

/// The request facts the MAC covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacInput<'a> {
    /// Timestamp, milliseconds since the epoch.
    pub ts: i64,
    /// A fresh nonce.
    pub nonce: &'a str,
    /// `POST`.
    pub method: &'a str,
    /// Request path (with query, if any).
    pub path: &'a str,
    /// Host, lower case.
    pub host: &'a str,
    /// Port (443 when the URL has none).
    pub port: u16,
}

/// The string the `mac` is computed over.
pub fn signing_string(input: &MacInput<'_>, bodyhash: &str) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        input.ts,
        input.nonce,
        input.method.to_ascii_uppercase(),
        input.path,
        input.host.to_ascii_lowercase(),
        input.port,
        bodyhash
    )
}

/// The `Authorization` header value.
pub fn authorization_header(
    client_id: &str,
    secret: &[u8],
    input: &MacInput<'_>,
    body: &[u8],
) -> Result<String, ProtocolError> {
    let bodyhash = hmac_b64(secret, body)?;
    let mac = hmac_b64(secret, signing_string(input, &bodyhash).as_bytes())?;
    Ok(format!(
        "MAC id=\"{client_id}\",ts=\"{}\",nonce=\"{}\",bodyhash=\"{bodyhash}\",mac=\"{mac}\"",
        input.ts, input.nonce
    ))
}

/// A parsed `Authorization: MAC …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacHeader {
    /// The client id.
    pub id: String,
    /// Timestamp, milliseconds.
    pub ts: i64,
    /// Nonce.
    pub nonce: String,
    /// base64 HMAC of the body.
    pub bodyhash: String,
    /// base64 HMAC of the signing string.
    pub mac: String,
}

/// Parses the header; every field must be present.
pub fn parse_authorization(header: &str) -> Result<MacHeader, ProtocolError> {
    let rest = header
        .strip_prefix("MAC ")
        .ok_or(ProtocolError::Malformed("Authorization scheme"))?;
    let mut fields = std::collections::HashMap::new();
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(ProtocolError::Malformed("Authorization parameter"))?;
        let v = v.trim_matches('"');
        fields.insert(k.to_string(), v.to_string());
    }
    let mut take = |name: &'static str| fields.remove(name).ok_or(ProtocolError::Malformed(name));
    Ok(MacHeader {
        id: take("id")?,
        ts: take("ts")?
            .parse()
            .map_err(|_| ProtocolError::Malformed("ts"))?,
        nonce: take("nonce")?,
        bodyhash: take("bodyhash")?,
        mac: take("mac")?,
    })
}

/// Checks body hash and MAC in constant time. `input.ts`/`nonce` must be the header's.
pub fn verify(
    header: &MacHeader,
    secret: &[u8],
    input: &MacInput<'_>,
    body: &[u8],
) -> Result<(), ProtocolError> {
    let same = |a: &str, b: &str| a.len() == b.len() && memcmp::eq(a.as_bytes(), b.as_bytes());
    if !same(&hmac_b64(secret, body)?, &header.bodyhash) {
        return Err(ProtocolError::Invalid("bodyhash"));
    }
    let expected = hmac_b64(secret, signing_string(input, &header.bodyhash).as_bytes())?;
    if !same(&expected, &header.mac) {
        return Err(ProtocolError::Invalid("mac"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_tamper() -> Result<(), ProtocolError> {
        let input = MacInput {
            ts: 1_700_000_000_000,
            nonce: "n-1",
            method: "post",
            path: "/payments/digital/v2/product_account_reference",
            host: "Api.Example.com",
            port: 443,
        };
        assert_eq!(
            signing_string(&input, "bh"),
            "1700000000000\nn-1\nPOST\n/payments/digital/v2/product_account_reference\napi.example.com\n443\nbh\n"
        );
        let header = authorization_header("client", b"secret", &input, b"[\"1\"]")?;
        let parsed = parse_authorization(&header)?;
        assert_eq!(parsed.id, "client");
        verify(&parsed, b"secret", &input, b"[\"1\"]")?;
        assert_eq!(
            verify(&parsed, b"secret", &input, b"[\"2\"]"),
            Err(ProtocolError::Invalid("bodyhash"))
        );
        assert_eq!(
            verify(&parsed, b"other", &input, b"[\"1\"]"),
            Err(ProtocolError::Invalid("bodyhash"))
        );
        let moved = MacInput {
            port: 8443,
            ..input
        };
        assert_eq!(
            verify(&parsed, b"secret", &moved, b"[\"1\"]"),
            Err(ProtocolError::Invalid("mac"))
        );
        Ok(())
    }
}
