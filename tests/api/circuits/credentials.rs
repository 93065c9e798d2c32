//! Live mode reads and parses every enabled circuit's credentials first: a malformed key file
//! stops start-up naming its key, before migrations, queues or listeners (nothing is served).

use secrecy::ExposeSecret;
use tkm::config::CircuitsMode;
use tkm::startup::Application;

use super::*;
use crate::helpers::root;

#[actix_web::test]
async fn a_malformed_live_key_file_stops_start_up_naming_its_key() {
    let mut settings = test_settings().await;
    let fixtures = root().join("tests/fixtures/circuits");
    let dir = root().join("target/test-secrets");
    std::fs::create_dir_all(&dir).unwrap();
    let malformed = dir.join(format!("malformed-signing-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(
        &malformed,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let c = &mut settings.circuits;
    c.mode = CircuitsMode::Live;
    c.visa.enabled = false;
    c.amex.enabled = false;
    let mc = &mut c.mastercard;
    mc.bin_source = tkm::config::BinSource::Api;
    mc.consumer_key = Some("test-only-consumer-key".into());
    mc.signing_key_file = Some(malformed.clone());
    mc.circuit_public_key_file = Some(fixtures.join("test-only-mastercard-fle-public.pem"));
    mc.private_key_file = Some(fixtures.join("test-only-mastercard-fle-private.pem"));
    // Every file is there and readable: only parsing it shows what is wrong.
    settings
        .validate()
        .expect("the configuration passes its checks");

    let database = settings.database.url.expose_secret().to_owned();
    let err = match Application::build(settings).await {
        Ok(_) => panic!("a malformed signing key must stop start-up"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("circuits.mastercard.signing_key_file"),
        "the error names the key: {err}"
    );
    assert!(
        !err.contains("bm90IGEga2V5"),
        "no key material in errors: {err}"
    );
    // Refused before anything else: not even the migrations ran.
    let (client, conn) = tokio_postgres::connect(&database, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(conn);
    let migrated: bool = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !migrated,
        "start-up went on before checking the credentials"
    );
    let _ = std::fs::remove_file(&malformed);
}
