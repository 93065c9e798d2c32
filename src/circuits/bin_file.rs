//! The `file` BIN source: a CSV of `min;max[;issuer BIN[;issuer name]]` rows from an HTTPS URL
//! or a path, checked against its configured SHA-256 before it is read, and read through the
//! `csv` crate ([`crate::csv_dialect`]) into validated [`BinRange`]s.

use std::time::Instant;

use sha2::{Digest, Sha256};

use super::http::{CallKind, Transport};
use super::spec::ClientSpec;
use super::{CallError, RawBinRange};
use crate::config::BinFileLocation;
use crate::domain::{BinRange, Circuit};

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

/// Fetches, verifies and parses the file; a bad row fails the whole fetch, naming its line.
pub async fn fetch(spec: &ClientSpec, http: &Transport) -> Result<Vec<RawBinRange>, CallError> {
    let source = spec
        .bin_file
        .as_deref()
        .ok_or_else(|| CallError::Refused("no bin_file configured".into()))?;
    let location = BinFileLocation::parse(source)
        .map_err(|_| CallError::Refused("bin_file is not a URL or a path".into()))?;
    let content = match location {
        BinFileLocation::Url(url) if matches!(url.scheme(), "https" | "http") => {
            let started = Instant::now();
            let result = download(http, url.as_str()).await;
            http.observe(CallKind::Bins, started, &result);
            result?
        }
        BinFileLocation::Url(_) => {
            return Err(CallError::Refused("bin_file URL is not https".into()));
        }
        BinFileLocation::Path(path) => tokio::fs::read(path)
            .await
            .map_err(|e| CallError::Transport(format!("cannot read the BIN file: {e}")))?,
    };
    if let Some(expected) = &spec.bin_file_sha256 {
        let actual = hex::encode(Sha256::digest(&content));
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(CallError::Malformed(
                "BIN file SHA-256 differs from bin_file_sha256".into(),
            ));
        }
    }
    Ok(parse(spec.circuit, &content)?
        .iter()
        .map(|r| RawBinRange {
            min: r.min().to_owned(),
            max: r.max().to_owned(),
            issuer_bin: r.issuer_bin().map(str::to_owned),
            issuer_name: r.issuer_name().map(str::to_owned),
        })
        .collect())
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

fn bad_line(line: u64, what: &str) -> CallError {
    CallError::Malformed(format!("BIN file line {line}: {what}"))
}

/// Line numbers of records, counted from where each one ends (the `csv` reader's own record
/// positions do not count the blank lines it skips).
struct Lines<'a> {
    content: &'a [u8],
    counted: usize,
    newlines: u64,
}

impl Lines<'_> {
    /// The line of the record that ends (with its terminator) at byte `end`.
    fn of_record_ending_at(&mut self, end: u64) -> u64 {
        let end = usize::try_from(end).map_or(self.content.len(), |e| e.min(self.content.len()));
        let own = &self.content[..end];
        let own = own.strip_suffix(b"\n").unwrap_or(own);
        let own = own.strip_suffix(b"\r").unwrap_or(own);
        if let Some(new) = own.get(self.counted..) {
            self.newlines += new.iter().filter(|b| **b == b'\n').count() as u64;
            self.counted = own.len();
        }
        self.newlines + 1
    }
}

/// Reads the CSV into `circuit`'s ranges (blank lines and `#` comments skipped; an optional
/// `min;max` header line too). The first bad row fails the file, naming its line and field.
pub fn parse(circuit: Circuit, content: &[u8]) -> Result<Vec<BinRange>, CallError> {
    let mut builder = crate::csv_dialect::reader();
    builder.comment(Some(b'#'));
    let mut reader = builder.from_reader(content);
    let mut lines = Lines {
        content,
        counted: 0,
        newlines: 0,
    };
    let mut record = csv::ByteRecord::new();
    let mut ranges = Vec::new();
    loop {
        let more = reader.read_byte_record(&mut record);
        let line = lines.of_record_ending_at(reader.position().byte());
        if !more.map_err(|_| bad_line(line, "unreadable"))? {
            return Ok(ranges);
        }
        let field = |index: usize, name: &str| -> Result<Option<&str>, CallError> {
            match record.get(index) {
                None => Ok(None),
                Some(bytes) => std::str::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| bad_line(line, &format!("{name} is not UTF-8"))),
            }
        };
        let min = field(0, "min")?.unwrap_or_default();
        // A line of blanks, an indented comment, the header.
        if (record.len() == 1 && min.is_empty())
            || min.starts_with('#')
            || (line == 1 && min.eq_ignore_ascii_case("min"))
        {
            continue;
        }
        let max =
            field(1, "max")?.ok_or_else(|| bad_line(line, "max missing (expected min;max)"))?;
        let issuer_bin = field(2, "issuer BIN")?.filter(|v| !v.is_empty());
        let issuer_name = field(3, "issuer name")?.filter(|v| !v.is_empty());
        let range = BinRange::parse(circuit, min, max, issuer_bin, issuer_name)
            .map_err(|e| bad_line(line, e.0))?;
        ranges.push(range);
    }
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
        let rows = parse(
            Circuit::Visa,
            b"min;max\n# comment\n400000;400099;400000;Bank\n\n  \n  # indented\n500000;500001\r\n",
        )?;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].issuer_name(), Some("Bank"));
        assert_eq!(rows[1].issuer_bin(), None);
        let refused = |content: &[u8]| parse(Circuit::Visa, content).err();
        assert_eq!(
            refused(b"400000;400099\nnonsense\n"),
            Some(CallError::Malformed(
                "BIN file line 2: max missing (expected min;max)".into()
            ))
        );
        assert_eq!(
            refused(b"# ranges\n400000;400099\n\n410000;41x099\n"),
            Some(CallError::Malformed(
                "BIN file line 4: max must be 6 to 21 digits".into()
            ))
        );
        assert_eq!(
            refused(b"400000;400099;400000;\xff\n"),
            Some(CallError::Malformed(
                "BIN file line 1: issuer name is not UTF-8".into()
            ))
        );
        assert_eq!(
            refused(b"400000;400099\r\n\r\n  \r\n# x\r\n400000;400099;\"a\nb\"\r\n41;2"),
            Some(CallError::Malformed(
                "BIN file line 7: min must be 6 to 21 digits".into()
            ))
        );
        assert_eq!(
            refused(b"410000;400000\n"),
            Some(CallError::Malformed(
                "BIN file line 1: min must not exceed max".into()
            ))
        );
        Ok(())
    }

    /// A BIN file of `ranges`, written with the same dialect.
    fn write<'a>(ranges: impl IntoIterator<Item = &'a BinRange>) -> Result<Vec<u8>, csv::Error> {
        let mut out = crate::csv_dialect::writer().from_writer(Vec::new());
        for r in ranges {
            let mut row = vec![r.min(), r.max()];
            match (r.issuer_bin(), r.issuer_name()) {
                (None, None) => {}
                (bin, None) => row.push(bin.unwrap_or_default()),
                (bin, Some(name)) => row.extend([bin.unwrap_or_default(), name]),
            }
            out.write_record(&row)?;
        }
        out.into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))
    }

    #[test]
    fn written_files_read_back_the_same_ranges() -> Result<(), Box<dyn std::error::Error>> {
        let ranges = vec![
            BinRange::parse(Circuit::Amex, "370000", "370099", None, None)?,
            BinRange::parse(Circuit::Amex, "371000", "371099", Some("371000"), None)?,
            BinRange::parse(
                Circuit::Amex,
                "372000",
                "372099",
                None,
                Some("Bank; \"Sud\""),
            )?,
        ];
        let file = write(&ranges)?;
        assert!(
            String::from_utf8(file.clone())?.starts_with("370000;370099\n371000;371099;371000\n")
        );
        assert_eq!(parse(Circuit::Amex, &file)?, ranges);
        Ok(())
    }
}
