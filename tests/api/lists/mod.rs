//! The published lists (TK8) through the real mTLS API: contents against a database filled here,
//! the one-shot links, parts, generations and deltas. Downloads are checked with `unzip -p` and
//! `sha256sum`, as an acquirer would.

use awc::http::Method;
use serde_json::Value;

use std::time::Duration;

use crate::helpers::{eventually, job_end, Reply, TestApp};

mod generations;
mod links;
mod membership;

/// Waits until no list build runs (the start-up one included): a request while one of the same
/// lists runs joins it, and the test's data may be newer than that build.
async fn idle(app: &TestApp) {
    let quiet = eventually(Duration::from_secs(60), || async {
        let jobs = app
            .call("admin", Method::GET, "/admin/jobs", &[], None)
            .await;
        let busy = jobs.json.as_array().is_some_and(|a| {
            a.iter()
                .any(|j| j["state"] == "RUNNING" && j["kind"] == "list-build")
        });
        (!busy).then_some(())
    })
    .await;
    assert!(quiet.is_some(), "jobs still running");
}

/// Starts a build of `kinds` (all when empty) and waits for its job to succeed.
async fn build(app: &TestApp, kinds: &str) -> String {
    idle(app).await;
    let path = if kinds.is_empty() {
        "/admin/lists/generate".to_owned()
    } else {
        format!("/admin/lists/generate?kinds={kinds}")
    };
    let r = app.call("admin", Method::POST, &path, &[], None).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["jobId"].as_str().unwrap().to_owned();
    let job = job_end(app, &id).await;
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    id
}

/// The path of a one-shot link (the URL starts with `server.public_url`).
fn link_path(app: &TestApp, url: &str) -> String {
    let base = app.settings.server.public_url.trim_end_matches('/');
    assert!(url.starts_with(base), "{url} does not start with {base}");
    url[base.len()..].to_owned()
}

/// Follows a 302 of a list endpoint as `role`: the redirect and the download.
async fn follow(app: &TestApp, role: &str, path: &str) -> (Reply, Reply) {
    let redirect = app.call(role, Method::GET, path, &[], None).await;
    assert_eq!(redirect.status, 302, "{path}: {}", redirect.text);
    let location = header(&redirect, "location");
    let file = app
        .call(role, Method::GET, &link_path(app, &location), &[], None)
        .await;
    assert_eq!(file.status, 200, "{}", file.text);
    (redirect, file)
}

fn header(r: &Reply, name: &str) -> String {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The lines of a downloaded ZIP as `unzip -p` prints them, after checking that `sha256sum`
/// of the bytes is the checksum the download announced, and that the ZIP has one entry.
fn unzip_lines(file: &Reply) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("tkm-list-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("list.zip");
    std::fs::write(&path, &file.bytes).unwrap();
    let sum = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()
        .unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    assert_eq!(
        sum.split_whitespace().next(),
        Some(header(file, "checksum-sha256").as_str())
    );
    assert_eq!(
        header(file, "x-ms-meta-sha256"),
        header(file, "checksum-sha256")
    );
    assert_eq!(header(file, "content-length"), file.bytes.len().to_string());
    assert_eq!(header(file, "content-type"), "application/zip");
    let listing = std::process::Command::new("unzip")
        .arg("-Z1")
        .arg(&path)
        .output()
        .unwrap();
    let entries = String::from_utf8(listing.stdout).unwrap();
    let entries: Vec<&str> = entries.lines().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let valid = entries[0]
        .strip_suffix(".csv")
        .is_some_and(|stem| stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    assert!(valid, "entry name {}", entries[0]);
    let out = std::process::Command::new("unzip")
        .arg("-p")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with('\n'), "LF-terminated");
    assert!(!text.contains('\r'));
    text.lines().map(str::to_owned).collect()
}

/// A list's whole content through its 302 endpoint, part after part.
async fn full_list(app: &TestApp, path: &str) -> (Vec<String>, Value) {
    let mut lines = Vec::new();
    let mut part = 0;
    loop {
        let (redirect, file) = follow(app, "acquirer", &format!("{path}?filePart={part}")).await;
        let generation = Value::from(header(&redirect, "x-ms-meta-generation"));
        assert_eq!(
            header(&redirect, "x-ms-meta-sha256"),
            header(&file, "checksum-sha256")
        );
        lines.extend(unzip_lines(&file));
        match redirect.headers.get("x-ms-meta-nextFile") {
            Some(n) => {
                part += 1;
                assert_eq!(n.to_str().unwrap(), part.to_string());
            }
            None => return (lines, generation),
        }
    }
}
