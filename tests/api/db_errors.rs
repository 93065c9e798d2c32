//! Database errors as tkm logs them: SQLSTATE and constraint name, never PostgreSQL's DETAIL
//! text, which quotes the row's values.

use tkm::db::DbError;

use crate::helpers::{spawn_app, tax_code};

#[actix_web::test]
async fn a_logged_database_error_names_sqlstate_and_constraint_but_no_value() {
    let app = spawn_app().await;
    let conn = app.pool.get().await.unwrap();
    let tc = tax_code();
    let insert = "INSERT INTO consent_citizen (tax_code, version, created_by, updated_by) \
                  VALUES ($1, 1, 't', 't')";
    conn.execute(insert, &[&tc]).await.unwrap();
    let raw = conn.execute(insert, &[&tc]).await.unwrap_err();
    // PostgreSQL's own text quotes the value (DETAIL: Key (tax_code)=(…) already exists).
    assert!(
        format!("{:?}", raw).contains(&tc),
        "the raw error holds the value"
    );
    let e = DbError::from(raw);
    assert!(matches!(e, DbError::Unexpected(_)));
    let (DbError::Unexpected(inner) | DbError::Unavailable(inner)) = &e;
    for text in [
        format!("{e}"),
        format!("{e:?}"),
        format!("{inner:#}"),
        format!("{inner:?}"),
    ] {
        assert!(!text.contains(&tc), "value leaked: {text}");
        assert!(!text.contains("DETAIL"), "DETAIL leaked: {text}");
    }
    let logged = format!("{inner:?}");
    assert!(logged.contains("23505"), "{logged}");
    assert!(logged.contains("consent_citizen_pkey"), "{logged}");
    assert_eq!(e.sqlstate().map(|c| c.code()), Some("23505"));
}

#[actix_web::test]
async fn the_stored_formats_are_still_checked_by_the_database() {
    let app = spawn_app().await;
    let conn = app.pool.get().await.unwrap();
    let insert_card =
        "INSERT INTO card (hpan, circuit, created_by, updated_by) VALUES ($1, 'VISA', 't', 't')";
    for bad in [
        "A".repeat(64),
        "g".repeat(64),
        "a".repeat(63),
        "a".repeat(65),
    ] {
        let e = conn.execute(insert_card, &[&bad]).await.unwrap_err();
        assert_eq!(
            DbError::from(e).sqlstate().map(|c| c.code()),
            Some("23514"),
            "{bad}"
        );
    }
    conn.execute(insert_card, &[&"a".repeat(64)]).await.unwrap();
    let insert_citizen =
        "INSERT INTO consent_citizen (tax_code, version, created_by, updated_by) VALUES ($1, 1, 't', 't')";
    for bad in [
        "rssmra85t10a562s",
        "RSSMRA85T10A562",
        "RSSMRA85T10A562S1",
        "RSSMRA85T10A562-",
    ] {
        let e = conn.execute(insert_citizen, &[&bad]).await.unwrap_err();
        assert_eq!(
            DbError::from(e).sqlstate().map(|c| c.code()),
            Some("23514"),
            "{bad}"
        );
    }
    conn.execute(insert_citizen, &[&tax_code()]).await.unwrap();
}
