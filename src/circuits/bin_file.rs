//! The `file` BIN source: a CSV of `min;max[;issuer BIN[;issuer name]]` rows from an HTTPS URL
//! or a path, checked against its configured SHA-256 before it is read.

use std::time::Instant;

use sha2::{Digest, Sha256};

use super::http::{CallKind, Transport};
use super::spec::ClientSpec;
use super::{CallError, RawBinRange};

/// Largest BIN file accepted.
const MAX_FILE: usize = 64 * 1024 * 1024;

/// The circuit's ranges from its configured source: `api` (the client's own call) or the file.
pub async fn from_source<F, Fut>(
    spec: &ClientSpec,
    http: &Transport,
    api: F,
) -> Result<Vec<RawBinRange>, CallError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<RawBinRange>, CallError>>,
{
    match spec.bin_source {
        crate::config::BinSource::Api => api().await,
        crate::config::BinSource::File => fetch(spec, http).await,
    }
}

/// Fetches, verifies and splits the file; a line without two fields fails the whole fetch.
pub async fn fetch(spec: &ClientSpec, http: &Transport) -> Result<Vec<RawBinRange>, CallError> {
    let source = spec
        .bin_file
        .as_deref()
        .ok_or_else(|| CallError::Refused("no bin_file configured".into()))?;
    let content = if source.starts_with("https://") || source.starts_with("http://") {
        let started = Instant::now();
        let result = download(http, source).await;
        http.observe(CallKind::Bins, started, &result);
        result?
    } else {
        tokio::fs::read(source)
            .await
            .map_err(|e| CallError::Transport(format!("cannot read the BIN file: {e}")))?
    };
    if let Some(expected) = &spec.bin_file_sha256 {
        let actual = hex::encode(Sha256::digest(&content));
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(CallError::Malformed(
                "BIN file SHA-256 differs from bin_file_sha256".into(),
            ));
        }
    }
    parse(&content)
}

async fn download(http: &Transport, url: &str) -> Result<Vec<u8>, CallError> {
    let mut response = http.client().get(url).send().await.map_err(|e| match e {
        awc::error::SendRequestError::Timeout => CallError::Timeout,
        other => CallError::Transport(other.to_string()),
    })?;
    let status = response.status();
    let retry_after = http.retry_after(response.headers());
    let body = response
        .body()
        .limit(MAX_FILE)
        .await
        .map_err(|_| CallError::Transport("reading the BIN file".into()))?;
    super::http::classify(status, retry_after, body).map(|reply| reply.body.to_vec())
}

/// Splits the CSV (blank lines and `#` comments skipped; an optional `min;max` header line too).
pub fn parse(content: &[u8]) -> Result<Vec<RawBinRange>, CallError> {
    let text = std::str::from_utf8(content)
        .map_err(|_| CallError::Malformed("BIN file is not UTF-8".into()))?;
    let mut ranges = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(';').map(str::trim);
        let (Some(min), Some(max)) = (fields.next(), fields.next()) else {
            return Err(CallError::Malformed(format!(
                "BIN file line {}: expected min;max",
                index + 1
            )));
        };
        if index == 0 && min.eq_ignore_ascii_case("min") {
            continue;
        }
        let optional = |s: Option<&str>| s.filter(|v| !v.is_empty()).map(str::to_string);
        ranges.push(RawBinRange {
            min: min.to_string(),
            max: max.to_string(),
            issuer_bin: optional(fields.next()),
            issuer_name: optional(fields.next()),
        });
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuits::spec::{Credentials, TlsSpec};
    use crate::config::BinSource;
    use crate::domain::Circuit;

    fn spec(file: &std::path::Path, sha256: Option<String>) -> ClientSpec {
        ClientSpec {
            circuit: Circuit::Amex,
            base_url: "https://127.0.0.1:1".into(),
            tls: TlsSpec {
                ca_file: None,
                client_cert: None,
            },
            tls_material: None,
            connect_timeout: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(1),
            credentials: Credentials::Amex {
                api_key: "k".into(),
                secret: secrecy::SecretString::from("s".to_string()),
            },
            batch_size: 1,
            bin_source: BinSource::File,
            bin_file: Some(file.display().to_string()),
            bin_file_sha256: sha256,
            token_flag: None,
            max_retry_after: std::time::Duration::from_secs(3600),
        }
    }

    #[actix_rt::test]
    async fn a_path_source_is_checked_against_its_sha256() -> Result<(), CallError> {
        let path = std::env::temp_dir().join(format!("tkm-bins-{}.csv", uuid::Uuid::new_v4()));
        let content = b"370000;370099\n";
        std::fs::write(&path, content).map_err(|e| CallError::Transport(e.to_string()))?;
        let metrics =
            crate::metrics::Metrics::new().map_err(|e| CallError::Transport(e.to_string()))?;
        let good = spec(&path, Some(hex::encode(Sha256::digest(content))));
        let http = Transport::new(&good, metrics, 1)?;
        assert_eq!(fetch(&good, &http).await?.len(), 1);
        let bad = spec(&path, Some("00".repeat(32)));
        assert!(matches!(
            fetch(&bad, &http).await,
            Err(CallError::Malformed(_))
        ));
        let _ = std::fs::remove_file(&path);
        Ok(())
    }

    #[test]
    fn parses_rows_and_names_bad_lines() -> Result<(), CallError> {
        let rows = parse(b"min;max\n# comment\n400000;400099;400000;Bank\n\n500000;500001\n")?;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].issuer_name.as_deref(), Some("Bank"));
        assert_eq!(rows[1].issuer_bin, None);
        assert_eq!(
            parse(b"400000;400099\nnonsense\n"),
            Err(CallError::Malformed(
                "BIN file line 2: expected min;max".into()
            ))
        );
        Ok(())
    }
}
