//! `tkm keys rotate` (`data.md`): every PAN, token PAN and dead letter sealed under the old vault
//! key is re-encrypted under the new active one; then the old key leaves the ring and every value
//! still opens. A second run finds nothing left.

use base64::Engine as _;
use tkm::bridge::dead_letter::seal_context;
use tkm::config::VaultKeySettings;
use tkm::crypto::{KeyRing, Sealed, VaultKey};
use tkm::db::dead_letters::{self, NewDeadLetter};
use tkm::domain::{Hpan, Htoken, Pan, TokenPan};

use crate::helpers::{root, sha, test_settings};

const PANS: [&str; 3] = ["4000001111111111", "5500002222222222", "370000333333333"];
const TOKENS: [&str; 2] = ["4000004444444444", "5500005555555555"];

#[actix_web::test]
async fn rotation_reseals_everything_under_the_new_key_and_the_old_one_can_go() {
    let mut settings = test_settings().await;
    tkm::db::run_migrations(&settings.database).await.unwrap();
    let pool = tkm::db::build_pool(&settings.database).unwrap();
    let old = KeyRing::from_settings(&settings).unwrap();
    let conn = pool.get().await.unwrap();
    for pan in PANS {
        let hpan = Hpan::parse(&sha(pan)).unwrap();
        let sealed = old.seal_pan(&Pan::parse(pan).unwrap(), &hpan).unwrap();
        conn.execute(
            "INSERT INTO card (hpan, circuit, active, pan_key_id, pan_ct, created_by, updated_by) \
             VALUES ($1, 'VISA', true, $2, $3, 't', 't')",
            &[&hpan.as_str(), &sealed.key_id, &sealed.blob],
        )
        .await
        .unwrap();
    }
    for token in TOKENS {
        let htoken = Htoken::parse(&sha(token)).unwrap();
        let sealed = old
            .seal_token(&TokenPan::parse(token).unwrap(), &htoken)
            .unwrap();
        conn.execute(
            "INSERT INTO token (htoken, circuit, token_key_id, token_ct, source, created_by, updated_by) \
             VALUES ($1, 'VISA', $2, $3, 'issuer', 't', 't')",
            &[&htoken.as_str(), &sealed.key_id, &sealed.blob],
        )
        .await
        .unwrap();
    }
    let letter_id = uuid::Uuid::new_v4();
    let original = b"{\"pan\": \"4000001111111111\"}".to_vec();
    let sealed = old.seal_blob(&original, &seal_context(letter_id)).unwrap();
    let letter = NewDeadLetter {
        id: letter_id,
        queue: "q",
        message_id: None,
        code: "NOT_JSON",
        reason: "body is not JSON",
        sealed: &sealed,
    };
    dead_letters::store(&pool, &letter, "t").await.unwrap();

    // A new key, made active.
    let new = VaultKey::generate("k2").unwrap();
    let file = root()
        .join("target/test-secrets")
        .join(format!("vault-{}.key", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &file,
        base64::engine::general_purpose::STANDARD.encode(new.expose_bytes()),
    )
    .unwrap();
    settings.vault.keys.push(VaultKeySettings {
        id: "k2".into(),
        key_file: Some(file.clone()),
        key_env: None,
    });
    settings.vault.active_key = "k2".into();
    let done = tkm::cli_keys::rotate(&settings, false).await.unwrap();
    assert_eq!(
        done,
        tkm::cli_keys::Rotated {
            cards: 3,
            tokens: 2,
            dead_letters: 1
        }
    );

    // The old key leaves the ring: everything opens with the new one alone.
    settings.vault.keys.retain(|k| k.id == "k2");
    let ring = KeyRing::from_settings(&settings).unwrap();
    for pan in PANS {
        let hpan = Hpan::parse(&sha(pan)).unwrap();
        let row = conn
            .query_one(
                "SELECT pan_key_id, pan_ct FROM card WHERE hpan = $1",
                &[&hpan.as_str()],
            )
            .await
            .unwrap();
        let sealed = Sealed {
            key_id: row.get(0),
            blob: row.get(1),
        };
        assert_eq!(ring.open_pan(&sealed, &hpan).unwrap().expose(), pan);
    }
    for token in TOKENS {
        let htoken = Htoken::parse(&sha(token)).unwrap();
        let row = conn
            .query_one(
                "SELECT token_key_id, token_ct FROM token WHERE htoken = $1",
                &[&htoken.as_str()],
            )
            .await
            .unwrap();
        let sealed = Sealed {
            key_id: row.get(0),
            blob: row.get(1),
        };
        assert_eq!(ring.open_token(&sealed, &htoken).unwrap().expose(), token);
    }
    let stored = dead_letters::get(&pool, letter_id).await.unwrap().unwrap();
    let opened = ring
        .open_blob(&stored.sealed, &seal_context(letter_id))
        .unwrap();
    assert_eq!(opened.as_slice(), original.as_slice());

    // Resumable: nothing is left for a second run.
    let again = tkm::cli_keys::rotate(&settings, false).await.unwrap();
    assert_eq!(again, tkm::cli_keys::Rotated::default());
    let _ = std::fs::remove_file(file);
}
