//! The one dialect of the `;`-separated files tkm reads and writes (BIN range files today, the
//! acquirer and transaction files next), all through the `csv` crate: `;` between fields, no
//! header row (a parser skips its own), rows of different lengths allowed, fields trimmed on
//! reading, `"` quoting as RFC 4180, `\n` line ends on writing. Parsers add what their format
//! allows (comments, …), read `ByteRecord`s and turn them into domain types at once, naming the
//! line and field of a bad row. This module depends on nothing of tkm.

/// A reader builder of the dialect: `reader().from_reader(bytes)`.
pub fn reader() -> csv::ReaderBuilder {
    let mut builder = csv::ReaderBuilder::new();
    builder
        .delimiter(b';')
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All);
    builder
}

/// A writer builder of the dialect: `writer().from_writer(out)`.
pub fn writer() -> csv::WriterBuilder {
    let mut builder = csv::WriterBuilder::new();
    builder
        .delimiter(b';')
        .has_headers(false)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'));
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_with_quotes_and_ragged_lengths() -> Result<(), Box<dyn std::error::Error>> {
        let mut out = writer().from_writer(Vec::new());
        out.write_record(["400000", "400099", "Bank; \"Nord\""])?;
        out.write_record(["500000", "500001"])?;
        let bytes = out.into_inner()?;
        assert_eq!(
            String::from_utf8(bytes.clone())?,
            "400000;400099;\"Bank; \"\"Nord\"\"\"\n500000;500001\n"
        );
        let mut rows = reader().from_reader(&bytes[..]);
        let rows: Vec<csv::StringRecord> = rows.records().collect::<Result<_, _>>()?;
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][2], "Bank; \"Nord\"");
        assert_eq!(rows[1].len(), 2);
        let trimmed = reader()
            .from_reader(&b" 1 ; 2 \r\n"[..])
            .into_records()
            .next()
            .transpose()?;
        assert_eq!(
            trimmed.as_ref().map(|r| r.iter().collect::<Vec<_>>()),
            Some(vec!["1", "2"])
        );
        Ok(())
    }
}
