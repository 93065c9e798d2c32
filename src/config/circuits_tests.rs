//! Tests of `[circuits]`: defaults, validation naming its keys, the replicas' rate share.

use super::*;

fn defaults() -> Result<CircuitsSettings, ConfigError> {
    Ok(crate::config::Settings::from_layers(None)?.circuits)
}

#[test]
fn live_mode_names_the_first_missing_credential() -> Result<(), ConfigError> {
    let mut c = defaults()?;
    validate(&c)?;
    c.mode = CircuitsMode::Live;
    let err = validate(&c)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("circuits.visa.user"), "{err}");
    c.visa.enabled = false;
    c.mastercard.enabled = false;
    c.amex.bin_file = Some("/nonexistent.csv".into());
    let err = validate(&c)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("circuits.amex.api_key"), "{err}");
    c.amex.bin_file = Some("http://bins.example/amex.csv".into());
    let err = validate(&c)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("circuits.amex.bin_file"), "{err}");
    c.amex.bin_file = Some("/nonexistent.csv".into());
    c.amex.api_key = Some("k".into());
    c.amex.client_secret_file = Some("/nonexistent/secret".into());
    let err = validate(&c)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("circuits.amex.client_secret_file"), "{err}");
    Ok(())
}

#[test]
fn live_endpoints_are_https_urls() -> Result<(), ConfigError> {
    let mut c = defaults()?;
    c.mode = CircuitsMode::Live;
    c.visa.enabled = false;
    c.mastercard.enabled = false;
    c.amex.api_key = Some("k".into());
    c.amex.client_secret_file = Some("Cargo.toml".into());
    c.amex.bin_file = Some("https://bins.example/amex.csv".into());
    validate(&c)?;
    let refused = |c: &CircuitsSettings| validate(c).err().map(|e| e.to_string());
    for bad in ["http://api.example", "ftp://api.example/x"] {
        c.amex.base_url = Url::parse(bad).map_err(|e| invalid("test", e.to_string()))?;
        let err = refused(&c).unwrap_or_default();
        assert!(err.contains("circuits.amex.base_url"), "{bad}: {err}");
    }
    c.amex.base_url =
        Url::parse("https://api.example/?x=1").map_err(|e| invalid("t", e.to_string()))?;
    assert!(refused(&c).is_some_and(|e| e.contains("circuits.amex.base_url")));
    c.amex.base_url =
        Url::parse("https://API.Example:443/").map_err(|e| invalid("t", e.to_string()))?;
    validate(&c)?;
    for bad in [
        "http://bins.example/a.csv",
        "https://[oops/a.csv",
        "file:///etc/bins.csv",
    ] {
        c.amex.bin_file = Some(bad.into());
        let err = refused(&c).unwrap_or_default();
        assert!(err.contains("circuits.amex.bin_file"), "{bad}: {err}");
    }
    c.amex.bin_file = Some("/srv/tkm/amex-bins.csv".into());
    validate(&c)?;
    assert_eq!(
        BinFileLocation::parse("bins/amex.csv").ok(),
        Some(BinFileLocation::Path("bins/amex.csv".into()))
    );
    Ok(())
}

#[test]
fn a_base_url_that_is_no_url_is_refused_naming_its_key() -> Result<(), ConfigError> {
    let file = std::env::temp_dir().join(format!("tkm-url-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &file,
        "[circuits.visa]\nbase_url = \"sandbox.api.visa.com/x\"\n",
    )
    .map_err(|e| invalid("test", e.to_string()))?;
    let loaded = crate::config::Settings::from_layers(Some(&file));
    let _ = std::fs::remove_file(&file);
    let err = loaded.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("circuits.visa.base_url"), "{err}");
    Ok(())
}

#[test]
fn rates_batches_and_times_are_checked() -> Result<(), ConfigError> {
    let mut c = defaults()?;
    c.visa.batch_size = 5;
    assert!(validate(&c).is_err(), "only AMEX batches");
    let mut c = defaults()?;
    c.mastercard.rate_per_second = 0;
    assert!(validate(&c).is_err());
    let mut c = defaults()?;
    c.amex.bin_refresh_at = "25:00".into();
    assert!(validate(&c).is_err());
    let mut c = defaults()?;
    c.amex.bin_source = BinSource::Api;
    assert!(validate(&c).is_err(), "AMEX has only the file source");
    let mut c = defaults()?;
    assert_eq!(c.max_retry_after_secs, 3600);
    c.max_retry_after_secs = 0;
    assert!(validate(&c).is_err(), "a cap of 0 would ignore every 429");
    c.max_retry_after_secs = u64::MAX;
    assert!(validate(&c).is_err());
    Ok(())
}

#[test]
fn replicas_share_the_contract_and_never_exceed_it() -> Result<(), ConfigError> {
    let mut c = defaults()?;
    assert_eq!(c.replicas, 1);
    assert_eq!(
        replica_share(10, 3, 1),
        (10, 3),
        "alone: the whole contract"
    );
    assert_eq!(replica_share(10, 3, 3), (3, 1), "rounded down, at least 1");
    assert_eq!(replica_share(10, 1, 2), (5, 1));
    for n in 1..=10 {
        let (rate, _) = replica_share(10, 2, n);
        assert!(rate * n <= 10, "{n} replicas together stay within the rate");
    }
    c.replicas = 0;
    assert!(validate(&c).is_err());
    c.replicas = c.visa.rate_per_second + 1;
    let err = validate(&c)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("rate_per_second"), "{err}");
    let mut c = defaults()?;
    c.simulator.attach_url = Url::parse("http://127.0.0.1:8543").ok();
    assert!(validate(&c).is_err(), "the simulator speaks TLS");
    Ok(())
}
