//! Uploads: the checks made before anything is stored, duplicates, another acquirer's reports,
//! a cut-off upload.

use std::time::Duration;

use awc::http::Method;

use super::{finished, list_name, report};
use crate::broker::encrypt;
use crate::helpers::{eventually, spawn_app, spawn_app_with, test_settings, upload, TestApp};

/// Files under `<storage.dir>/uploads` and rows of `upload`.
async fn stored(app: &TestApp) -> (usize, i64) {
    let dir = app.settings.storage.dir.join("uploads");
    let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    let rows: i64 = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM upload", &[])
        .await
        .unwrap()
        .get(0);
    (files, rows)
}

#[actix_web::test]
async fn uploads_are_checked_before_anything_is_stored() {
    let mut s = test_settings().await;
    s.uploads.max_bytes = 4096;
    let app = spawn_app_with(s).await;
    let pgp = encrypt(&app, b"# nothing\n");
    let bad = [
        ("TKM.99999.TKNLST.20261123.1015.001.csv", pgp.clone()),
        ("../TKM.99999.TKNLST.20261123.101500.001.csv", pgp.clone()),
        ("CSTAR.99999.TRNLOG.20261123.101500.001.csv", pgp.clone()),
        // Another acquirer's ABI.
        ("TKM.88888.TKNLST.20261123.101500.001.csv.pgp", pgp.clone()),
        // Not PGP: a clear token list is never stored.
        (
            "TKM.99999.TKNLST.20261123.101500.001.csv",
            b"4000001234567890;01;V0010000000000000000000000001\n".to_vec(),
        ),
        // Over uploads.max_bytes.
        (
            "TKM.99999.TKNLST.20261123.101500.002.csv.pgp",
            vec![0x85; 8192],
        ),
        ("TKM.99999.TKNLST.20261123.101500.003.csv.pgp", Vec::new()),
    ];
    for (name, content) in bad {
        let r = upload(&app, "acquirer", "/token-list", name, &content).await;
        r.assert_error(422, 4003);
        assert!(!r.text.contains("4000001234567890"), "{}", r.text);
        assert!(
            !r.text.contains("TKM.88888"),
            "the name is never echoed: {}",
            r.text
        );
    }
    // The field must be called file.
    let (ct, body) = crate::support::fixtures::multipart("other", &list_name(1), &pgp);
    app.call_raw("acquirer", Method::POST, "/token-list", &ct, body)
        .await
        .assert_error(422, 4003);
    for role in ["platform", "issuer", "admin"] {
        upload(&app, role, "/token-list", &list_name(1), &pgp)
            .await
            .assert_error(403, 9403);
    }
    assert_eq!(stored(&app).await, (0, 0), "nothing stored");
}

#[actix_web::test]
async fn the_same_file_again_gets_the_first_id_and_is_processed_once() {
    let app = spawn_app().await;
    let content = encrypt(&app, b"5100000000000001;02;5001000000000000000000000000a\n");
    let first = upload(&app, "acquirer", "/token-list", &list_name(7), &content).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let id = first.json["id"].as_str().unwrap().to_owned();
    assert_eq!(first.json["filename"], list_name(7));
    assert_eq!(finished(&app, &id).await["accepted"], 1);
    let again = upload(&app, "acquirer", "/token-list", &list_name(7), &content).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.json["id"], id.as_str(), "the original id");
    // Another name is another file.
    let other = upload(&app, "acquirer", "/token-list", &list_name(8), &content).await;
    assert_ne!(other.json["id"], id.as_str());
    let report = finished(&app, other.json["id"].as_str().unwrap()).await;
    assert_eq!(report["discarded"]["ALREADY_KNOWN"], 1, "{report}");
    let (_, rows) = stored(&app).await;
    assert_eq!(rows, 2);
    // Processed files leave the disk.
    let empty = eventually(Duration::from_secs(10), || async {
        (stored(&app).await.0 == 0).then_some(())
    })
    .await;
    assert!(
        empty.is_some(),
        "processed uploads are removed from storage"
    );
}

#[actix_web::test]
async fn an_acquirer_sees_only_its_own_reports() {
    let app = spawn_app().await;
    let content = encrypt(&app, b"# empty list\n");
    let r = upload(&app, "acquirer", "/token-list", &list_name(1), &content).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["id"].as_str().unwrap();
    let done = finished(&app, id).await;
    assert_eq!(done["state"], "DONE");
    assert_eq!(done["rows"], 0);
    report(&app, "acquirer2", id).await.assert_error(404, 4001);
    assert_eq!(report(&app, "platform", id).await.status, 200);
    report(&app, "acquirer", &uuid::Uuid::new_v4().to_string())
        .await
        .assert_error(404, 4001);
    report(&app, "acquirer", "not-a-uuid")
        .await
        .assert_error(404, 4001);
    report(&app, "issuer", id).await.assert_error(403, 9403);
}

#[actix_web::test]
async fn a_cut_off_upload_leaves_nothing_behind() {
    use futures_util::stream;
    let app = spawn_app().await;
    let content = encrypt(&app, &b"# padding\n".repeat(20_000));
    let (ct, body) = crate::support::fixtures::multipart("file", &list_name(1), &content);
    let half = body.len() / 2;
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::copy_from_slice(&body[..half])),
        Err(std::io::Error::other("connection cut")),
    ];
    let client = crate::helpers::client(Some("acquirer"));
    let sent = client
        .post(app.url("/token-list"))
        .insert_header(("content-type", ct.as_str()))
        .insert_header(("content-length", body.len().to_string()))
        .send_stream(stream::iter(chunks))
        .await;
    if let Ok(r) = sent {
        assert_ne!(r.status().as_u16(), 202);
    }
    let clean = eventually(Duration::from_secs(10), || async {
        (stored(&app).await == (0, 0)).then_some(())
    })
    .await;
    assert!(
        clean.is_some(),
        "no part file and no upload row: {:?}",
        stored(&app).await
    );
    // The same file sent whole afterwards is taken.
    let r = upload(&app, "acquirer", "/token-list", &list_name(1), &content).await;
    assert_eq!(r.status, 202, "{}", r.text);
}

/// Unmounts a test's tmpfs when dropped (also when the test fails).
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        // Lazily: the test's server may still hold the directory open.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[actix_web::test]
async fn a_full_disk_answers_503_and_leaves_nothing() {
    let mut s = test_settings().await;
    let dir = s.storage.dir.clone();
    std::fs::create_dir_all(&dir).unwrap();
    // A 256 KiB tmpfs as storage.dir (root only: CI and the development machines run as root).
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|st| st.success());
    if !mounted {
        eprintln!(
            "a_full_disk_answers_503_and_leaves_nothing: cannot mount a tmpfs (not root); skipped"
        );
        return;
    }
    let _guard = Mounted(dir.clone());
    s.lists.build_on_start = false;
    let app = spawn_app_with(s).await;
    let content = encrypt(&app, &rand_bytes(600 * 1024));
    let r = upload(&app, "acquirer", "/token-list", &list_name(1), &content).await;
    r.assert_error(503, 9503);
    assert_eq!(
        stored(&app).await,
        (0, 0),
        "nothing left on the full volume"
    );
    // Room again: the same upload is taken.
    let small = encrypt(&app, b"# a small list\n");
    let r = upload(&app, "acquirer", "/token-list", &list_name(1), &small).await;
    assert_eq!(r.status, 202, "{}", r.text);
}

/// Incompressible bytes (PGP compresses what it encrypts).
fn rand_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

#[actix_web::test]
async fn a_multipart_body_the_reader_would_wait_on_forever_is_answered() {
    // The fuzzing finding `fuzz/findings/multipart-hang-1`: its first line the Content-Type, the
    // rest the body. Before the read was bounded, the request was never answered.
    let app = spawn_app().await;
    let input =
        std::fs::read(crate::helpers::root().join("fuzz/findings/multipart-hang-1")).unwrap();
    let at = input.iter().position(|b| *b == b'\n').unwrap();
    let ct = String::from_utf8(input[..at].to_vec()).unwrap();
    let started = std::time::Instant::now();
    let r = app
        .call_raw(
            "acquirer",
            Method::POST,
            "/token-list",
            &ct,
            input[at + 1..].to_vec(),
        )
        .await;
    r.assert_error(400, 4000);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(stored(&app).await, (0, 0), "nothing left behind");
}
