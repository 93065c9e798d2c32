//! One TRNLOG row (`files.md`, TK10) parsed into a [`Record`], or refused naming its first bad field.

use std::fmt;

use chrono::{DateTime, FixedOffset};

use crate::domain::{Abi, Par, TokenPan};

/// The largest `total_amount`: 99 999 999 999 euro cents.
pub const MAX_AMOUNT: u64 = 99_999_999_999;

/// `tipo_operazione`: `00` payment, `01` reversal, `02` Apple Pay, `03` Google Pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `00`.
    Payment,
    /// `01`.
    Reversal,
    /// `02` (a payment).
    ApplePay,
    /// `03` (a payment).
    GooglePay,
}

impl Operation {
    /// The two-digit code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Payment => "00",
            Self::Reversal => "01",
            Self::ApplePay => "02",
            Self::GooglePay => "03",
        }
    }

    /// Every operation but a reversal is a payment.
    pub fn is_payment(self) -> bool {
        self != Self::Reversal
    }

    fn parse(input: &str) -> Option<Self> {
        match input {
            "00" => Some(Self::Payment),
            "01" => Some(Self::Reversal),
            "02" => Some(Self::ApplePay),
            "03" => Some(Self::GooglePay),
            _ => None,
        }
    }
}

/// A 32-byte SHA-256 digest (an HPAN or HTOKEN) held as bytes: the matcher's fixed-size key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashKey(pub [u8; 32]);

impl HashKey {
    /// Parses 64 hex characters, any case.
    pub fn from_hex(input: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(input, &mut out).ok()?;
        Some(Self(out))
    }

    /// Lowercase hex, as HPANs are written.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hashes are logged truncated (data.md).
        write!(f, "{}…", &hex::encode(&self.0[..3]))
    }
}

/// Column 4: a hash, or a clear card number the reader hashes with the salt (and never keeps).
#[derive(Debug, Clone)]
pub enum Column4 {
    /// 64 hex characters: an HPAN or an HTOKEN.
    Hash(HashKey),
    /// 12–19 digits: a clear PAN or token PAN.
    Clear(TokenPan),
}

/// A valid TRNLOG row. Column 1 is the file's ABI (checked), so it is not kept.
#[derive(Debug, Clone)]
pub struct Record {
    /// `tipo_operazione`.
    pub operation: Operation,
    /// `tipo_circuito`, two digits.
    pub circuit: u8,
    /// `hash_pan` (HPAN or HTOKEN), the clear number already hashed by the reader.
    pub hash: HashKey,
    /// `date_time`, with the offset it was given with.
    pub at: DateTime<FixedOffset>,
    /// `id_trx_acquirer`.
    pub id_trx_acquirer: String,
    /// `id_trx_issuer` (may be empty).
    pub id_trx_issuer: String,
    /// `correlation_id`, absent when empty.
    pub correlation_id: Option<String>,
    /// `total_amount` in euro cents.
    pub amount: u64,
    /// `acquirer_id`.
    pub acquirer_id: String,
    /// `merchant_id`.
    pub merchant_id: String,
    /// `terminal_id`.
    pub terminal_id: String,
    /// `bank_identification_number`.
    pub bin: String,
    /// `MCC`.
    pub mcc: String,
    /// `PAR`, absent when the row has none.
    pub par: Option<Par>,
}

/// A row as read: column 4 may still be a clear number the reader must hash.
#[derive(Debug, Clone)]
pub struct ParsedRow {
    /// The row, with `hash` zeroed when `clear` is set.
    pub record: Record,
    /// The clear number of column 4, when the acquirer sent one.
    pub clear: Option<TokenPan>,
}

/// Why a row is invalid (reason `11`): the first failing field, and `id_trx_acquirer` when that
/// field itself could be read (the outcome line carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field's name as `files.md` writes it (`fields` for a wrong count).
    pub field: &'static str,
    /// Column 6, when readable.
    pub id_trx_acquirer: Option<String>,
}

/// Parses one row's fields (15, 16 or 19) for a file of `abi`.
pub fn parse_row(fields: &[&[u8]], abi: &Abi) -> Result<ParsedRow, Invalid> {
    let id = fields
        .get(5)
        .and_then(|f| std::str::from_utf8(f).ok())
        .filter(|s| !s.trim().is_empty() && s.len() <= 255)
        .map(str::to_owned);
    let fail = |field: &'static str| Invalid {
        field,
        id_trx_acquirer: id.clone(),
    };
    let par_at = match fields.len() {
        15 => None,
        16 => Some(15),
        19 => Some(18),
        _ => return Err(fail("fields")),
    };
    let text = |i: usize, name: &'static str| -> Result<&str, Invalid> {
        let raw = fields.get(i).ok_or_else(|| fail(name))?;
        std::str::from_utf8(raw).map_err(|_| fail(name))
    };
    let bounded = |i: usize, name: &'static str, max: usize, blank_ok: bool| {
        let s = text(i, name)?;
        if s.len() > max || (!blank_ok && s.trim().is_empty()) {
            return Err(fail(name));
        }
        Ok(s)
    };

    let acquirer = bounded(0, "codice_acquirer", 20, false)?;
    if acquirer != abi.as_str() {
        return Err(fail("codice_acquirer"));
    }
    let operation =
        Operation::parse(text(1, "tipo_operazione")?).ok_or_else(|| fail("tipo_operazione"))?;
    let circuit = two_digits(text(2, "tipo_circuito")?).ok_or_else(|| fail("tipo_circuito"))?;
    let column4 = column4(text(3, "hash_pan")?).ok_or_else(|| fail("hash_pan"))?;
    let at = DateTime::parse_from_rfc3339(text(4, "date_time")?).map_err(|_| fail("date_time"))?;
    let id_trx_acquirer = bounded(5, "id_trx_acquirer", 255, false)?.to_owned();
    let id_trx_issuer = bounded(6, "id_trx_issuer", 255, true)?.to_owned();
    let correlation = bounded(7, "correlation_id", 255, true)?;
    let amount = amount(text(8, "total_amount")?).ok_or_else(|| fail("total_amount"))?;
    let currency = text(9, "currency")?;
    if !currency.is_empty() && currency != "978" {
        return Err(fail("currency"));
    }
    let acquirer_id = bounded(10, "acquirer_id", 255, false)?.to_owned();
    let merchant_id = bounded(11, "merchant_id", 255, false)?.to_owned();
    let terminal_id = bounded(12, "terminal_id", 255, false)?.to_owned();
    let bin = text(13, "bank_identification_number")?;
    if !matches!(bin.len(), 6 | 8) || !bin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail("bank_identification_number"));
    }
    let mcc = bounded(14, "MCC", 5, false)?.to_owned();
    let par = match par_at {
        None => None,
        Some(i) => match text(i, "PAR")? {
            "" => None,
            p => Some(Par::parse(p).map_err(|_| fail("PAR"))?),
        },
    };
    let (hash, clear) = match column4 {
        Column4::Hash(h) => (h, None),
        Column4::Clear(pan) => (HashKey([0; 32]), Some(pan)),
    };
    Ok(ParsedRow {
        record: Record {
            operation,
            circuit,
            hash,
            at,
            id_trx_acquirer,
            id_trx_issuer,
            correlation_id: (!correlation.is_empty()).then(|| correlation.to_owned()),
            amount,
            acquirer_id,
            merchant_id,
            terminal_id,
            bin: bin.to_owned(),
            mcc,
            par,
        },
        clear,
    })
}

fn two_digits(input: &str) -> Option<u8> {
    (input.len() == 2 && input.bytes().all(|b| b.is_ascii_digit()))
        .then(|| input.parse().ok())
        .flatten()
}

fn column4(input: &str) -> Option<Column4> {
    if input.len() == 64 {
        return HashKey::from_hex(input).map(Column4::Hash);
    }
    TokenPan::parse(input).ok().map(Column4::Clear)
}

fn amount(input: &str) -> Option<u64> {
    if input.is_empty() || input.len() > 11 || !input.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    input.parse::<u64>().ok().filter(|a| *a <= MAX_AMOUNT)
}
