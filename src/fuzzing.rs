//! Fuzzing entry points (`quality.md` S3): every parser of outside input, fed arbitrary bytes.
//! The cargo-fuzz targets under `fuzz/` call these, and `tests/fuzz_corpus.rs` runs each target's
//! corpus through them in the suite. Each must return for any input — an `Err` is fine, a panic,
//! an overflow or a hang is a bug.

use std::io::BufReader;
use std::sync::OnceLock;

use secrecy::SecretString;

use crate::bridge::wire;
use crate::crypto::pgp::{generate, PgpKey, PgpKeyKind};
use crate::crypto::Hasher;
use crate::domain::token_list::{parse_row as token_list_row, TokenRanges};
use crate::domain::transactions::{parse_message, parse_row};
use crate::domain::{
    parse_event_timestamp, Abi, BinRange, Circuit, Pan, Par, TaxCode, UploadKind, UploadName,
};
use crate::files::physical::{Physical, PhysicalLines};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The targets, by name (`fuzz/fuzz_targets/<name>.rs`, `fuzz/corpus/<name>/`).
pub const TARGETS: [(&str, Target); 8] = [
    ("trnlog", trnlog),
    ("token_list", token_list),
    ("card_event", card_event),
    ("deletion", deletion),
    ("transaction_message", transaction_message),
    ("pgp_message", pgp_message),
    ("identifiers", identifiers),
    ("multipart", multipart),
];

/// A TRNLOG file: physical lines, then each row's fields (`files.md`).
pub fn trnlog(data: &[u8]) {
    let Ok(abi) = Abi::parse("99999") else {
        return;
    };
    let mut lines = PhysicalLines::new(BufReader::new(data), 4096);
    while let Ok(true) = lines.advance() {
        if let Physical::Row(row) = lines.current() {
            let fields: Vec<&[u8]> = row.split(|b| *b == b';').collect();
            let _ = parse_row(&fields, &abi);
        }
    }
}

/// A token list: physical lines, then each row against token BIN ranges.
pub fn token_list(data: &[u8]) {
    static RANGES: OnceLock<TokenRanges> = OnceLock::new();
    let ranges = RANGES.get_or_init(|| {
        let ranges: Vec<BinRange> = [
            (Circuit::Visa, "400000", "400099"),
            (Circuit::Amex, "370000000000", "370000999999999999999"),
        ]
        .into_iter()
        .filter_map(|(c, min, max)| BinRange::parse(c, min, max, None, None).ok())
        .collect();
        TokenRanges::new(&ranges)
    });
    let mut lines = PhysicalLines::new(BufReader::new(data), 4096);
    while let Ok(true) = lines.advance() {
        if let Physical::Row(row) = lines.current() {
            if let Ok(text) = std::str::from_utf8(row) {
                let _ = token_list_row(text, ranges);
            }
        }
    }
}

fn hasher() -> &'static Hasher {
    static HASHER: OnceLock<Hasher> = OnceLock::new();
    HASHER.get_or_init(|| Hasher::new(SecretString::from("fuzz-salt".to_owned())))
}

/// A decrypted card event (`messages.md`).
pub fn card_event(data: &[u8]) {
    let _ = wire::card_event(data, hasher());
}

/// A card deletion (`messages.md`).
pub fn deletion(data: &[u8]) {
    let _ = wire::deletion(data);
}

/// A `tkm-transactions` message (`messages.md`).
pub fn transaction_message(data: &[u8]) {
    let _ = parse_message(data);
}

/// An OpenPGP message (card events, uploads), decrypted with a key made for the run.
pub fn pgp_message(data: &[u8]) {
    static KEY: OnceLock<Option<PgpKey>> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let (secret, _public) = generate(PgpKeyKind::Curve25519, "fuzz <fuzz@tkm>", None).ok()?;
        PgpKey::from_armored(secret.as_bytes(), None).ok()
    });
    if let Some(key) = key {
        let _ = key.decrypt(data, 1 << 20);
    }
}

/// Header and field values parsed at the edge: tax codes, PANs, PARs, ABIs, upload names,
/// event timestamps — the input split on newlines, each line through each parser.
pub fn identifiers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        let _ = TaxCode::parse(line);
        let _ = Pan::parse(line);
        let _ = Par::parse(line);
        let _ = Par::parse_from_circuit(line);
        let _ = Abi::parse(line);
        let _ = UploadName::parse(UploadKind::Transactions, line);
        let _ = UploadName::parse(UploadKind::TokenList, line);
        let _ = parse_event_timestamp(line);
    }
}

/// An upload's multipart body as the upload endpoints read it (`api/uploads.rs`): the first line
/// is the request's `Content-Type`, the rest its body, cut into two chunks where its second line
/// says (as a network would); every field is read, the `file` field's name checked as an upload
/// name of either kind.
pub fn multipart(data: &[u8]) {
    use actix_web::http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
    use futures_util::TryStreamExt;
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(content_type) = HeaderValue::from_bytes(head) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, content_type);
    let cut = body.first().map_or(0, |b| usize::from(*b)).min(body.len());
    let chunks: Vec<Result<bytes::Bytes, actix_web::error::PayloadError>> = vec![
        Ok(bytes::Bytes::copy_from_slice(&body[..cut])),
        Ok(bytes::Bytes::copy_from_slice(&body[cut..])),
    ];
    let mut form = actix_multipart::Multipart::new(&headers, futures_util::stream::iter(chunks));
    let read = async move {
        while let Ok(Some(mut field)) = form.try_next().await {
            let is_file = field.name() == Some("file");
            if is_file {
                if let Some(name) = field.content_disposition().and_then(|cd| cd.get_filename()) {
                    let _ = UploadName::parse(UploadKind::TokenList, name);
                    let _ = UploadName::parse(UploadKind::Transactions, name);
                }
            }
            while let Ok(Some(_)) = field.try_next().await {}
        }
    };
    // The server bounds each read (`api/uploads.rs`); a body the reader would wait on forever
    // ends here after a second instead of hanging the fuzzer.
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        rt.block_on(async {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), read).await;
        });
    }
}
