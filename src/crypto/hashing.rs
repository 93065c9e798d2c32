//! HPAN = lowercase hex SHA-256 of the PAN followed by the salt (fixed by the ecosystem).

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::domain::{Hpan, Htoken, Pan, TokenPan};

/// Computes HPANs and HTOKENs with the programme's secret salt.
#[derive(Clone)]
pub struct Hasher {
    salt: SecretString,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher { salt: [REDACTED] }")
    }
}

impl Hasher {
    /// The hasher with the configured salt (`hashing.salt` or `hashing.salt_file`).
    pub fn from_settings(
        settings: &crate::config::Settings,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(Self::new(settings.salt()?))
    }

    /// Builds a hasher around the salt.
    pub fn new(salt: SecretString) -> Self {
        Self { salt }
    }

    fn digest(&self, value: &str) -> String {
        let mut h = Sha256::new();
        h.update(value.as_bytes());
        h.update(self.salt.expose_secret().as_bytes());
        hex::encode(h.finalize())
    }

    /// The HPAN of a card number.
    pub fn hpan(&self, pan: &Pan) -> Hpan {
        Hpan::from_digest(self.digest(pan.expose()))
    }

    /// The HTOKEN of a token PAN.
    pub fn htoken(&self, token: &TokenPan) -> Htoken {
        Htoken::from_digest(self.digest(token.expose()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(salt: &str) -> Hasher {
        Hasher::new(SecretString::from(salt.to_owned()))
    }

    #[test]
    fn matches_the_spec_vectors() {
        let pan = Pan::parse("0987654321098765").unwrap();
        assert_eq!(
            hasher("").hpan(&pan).as_str(),
            "a261f9479522020529213c5336dec371de5b3dacca0a8165c50ac33032c631ac"
        );
        // The second vector's "PAN" is not a card number, so it goes through the raw digest.
        assert_eq!(
            hasher("testSalt").digest("pan123"),
            "c56c4a4e1bbfd586a90f8a6501e63e43538ed15d7785cf922345c137334c2b07"
        );
    }

    #[test]
    fn matches_the_fixture_examples() {
        let h = hasher("testSalt");
        let pan = Pan::parse("5255000012340001").unwrap();
        let token = TokenPan::parse("5255990000000017").unwrap();
        assert_eq!(
            h.hpan(&pan).as_str(),
            "1bf5dc4a1958aecc4bcc44ea4e2adf9f39877efcbe154ef8ac9f72fcb940e170"
        );
        assert_eq!(
            h.htoken(&token).as_str(),
            "d10fff74f17a607d0d9341193b6fe3812ed82f515bfb368e08cd366c3649e822"
        );
    }

    #[test]
    fn debug_masks_the_salt() {
        assert!(!format!("{:?}", hasher("s3cr3t")).contains("s3cr3t"));
    }
}
