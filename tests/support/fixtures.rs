//! Test data and small API steps shared by the tests: fiscal codes, hashes under the tests'
//! salt, a citizen's consent, a job's end.

use std::time::Duration;

use crate::support::helpers::{eventually, TestApp, CANARY_SALT};

/// A fresh valid fiscal code (random surname/name letters, check character computed here,
/// independently of tkm's parser).
pub fn tax_code() -> String {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let id = uuid::Uuid::new_v4();
    let letters: String = id.as_bytes()[..6]
        .iter()
        .map(|b| char::from(b'A' + b % 26))
        .collect();
    let body = format!("{letters}85T10A562");
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, c)| {
            let v = if c.is_ascii_digit() {
                c - b'0'
            } else {
                c - b'A'
            } as usize;
            if i % 2 == 0 {
                ODD[v]
            } else {
                v as u32
            }
        })
        .sum();
    format!("{body}{}", char::from(b'A' + (sum % 26) as u8))
}

pub fn hpan(c: char) -> String {
    c.to_string().repeat(64)
}

/// The HPAN (or HTOKEN) of a number under the tests' salt, computed independently of tkm.
pub fn sha(value: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("{value}{CANARY_SALT}")))
}

/// Records a citizen's consent through the API (role io).
pub async fn consent(app: &TestApp, tc: &str, consent: &str) {
    let r = app
        .call(
            "io",
            awc::http::Method::POST,
            "/consent",
            &[("Tax-Code", tc), ("Client-Id", "t")],
            Some(serde_json::json!({"consent": consent})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Waits for a job to end and returns it.
pub async fn job_end(app: &TestApp, id: &str) -> serde_json::Value {
    eventually(Duration::from_secs(60), || async {
        let r = app
            .call(
                "admin",
                awc::http::Method::GET,
                &format!("/admin/jobs/{id}"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let state = r.json["state"].as_str().unwrap_or_default().to_string();
        (state == "SUCCEEDED" || state == "FAILED").then_some(r.json)
    })
    .await
    .expect("the job ends")
}

/// A `multipart/form-data` body with one file field: (content type, body).
pub fn multipart(field: &str, filename: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("tkm-test-{}", uuid::Uuid::new_v4().simple());
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Uploads `content` as `filename` to `path` (`/token-list`, `/transactions`) as `role`.
pub async fn upload(
    app: &TestApp,
    role: &str,
    path: &str,
    filename: &str,
    content: &[u8],
) -> crate::support::helpers::Reply {
    let (content_type, body) = multipart("file", filename, content);
    app.call_raw(role, awc::http::Method::POST, path, &content_type, body)
        .await
}
