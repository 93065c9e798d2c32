#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! OpenPGP interoperability with the real GnuPG CLI (`gpg`), the legacy BouncyCastle fixture
//! and the `tkm pgp generate` command. Each test has its own GNUPGHOME.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use secrecy::SecretString;
use tkm::config::PgpSettings;
use tkm::crypto::pgp::{encrypt_to, generate, PgpError, PgpKey, PgpKeyKind, PgpPublicKey};

const EVENT: &[u8] = br#"{"taxCode":"RSSMRA85T10A562S","pan":"4111111111111111","circuit":"01","tokens":[{"token":"4895370012345678"}]}"#;
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/legacy-bouncycastle/"
);

/// A throw-away directory (GnuPG home or output files), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tkm-pgp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `gpg` CLI on a fresh home.
struct Gpg {
    home: TempDir,
}

impl Gpg {
    fn new() -> Self {
        Self {
            home: TempDir::new(),
        }
    }

    /// Runs gpg with `args`, feeding `stdin`; panics with gpg's stderr on failure.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let mut child = Command::new("/usr/bin/gpg")
            .arg("--homedir")
            .arg(&self.home.0)
            .args(["--batch", "--yes", "--pinentry-mode", "loopback"])
            .args(["--trust-model", "always", "--no-tty", "--quiet"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gpg runs");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn import(&self, key: &[u8]) {
        self.run(&["--import"], key);
    }

    /// A new key without passphrase (or with `passphrase`): `primary` for signing, plus an
    /// encryption subkey of type `subkey` when given. Returns the fingerprint.
    fn make_key(&self, primary: &str, subkey: Option<&str>, passphrase: &str) -> String {
        let uid = format!("gpg test {} <gpg@localhost>", uuid::Uuid::new_v4());
        self.run(
            &[
                "--passphrase",
                passphrase,
                "--quick-gen-key",
                &uid,
                primary,
                "sign",
                "never",
            ],
            b"",
        );
        let listing =
            String::from_utf8(self.run(&["--with-colons", "--list-keys", &uid], b"")).unwrap();
        let fpr = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_owned())
            .unwrap();
        if let Some(subkey) = subkey {
            self.run(
                &[
                    "--passphrase",
                    passphrase,
                    "--quick-add-key",
                    &fpr,
                    subkey,
                    "encr",
                    "never",
                ],
                b"",
            );
        }
        fpr
    }

    fn encrypt(&self, recipient: &str, compress: &str, armor: bool, plaintext: &[u8]) -> Vec<u8> {
        let mut args = vec![
            "--encrypt",
            "--recipient",
            recipient,
            "--compress-algo",
            compress,
        ];
        if armor {
            args.push("--armor");
        }
        args.extend(["--output", "-"]);
        self.run(&args, plaintext)
    }

    fn decrypt(&self, message: &[u8]) -> Vec<u8> {
        self.run(&["--decrypt", "--output", "-"], message)
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.home.0)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

fn fingerprint_of(public_armored: &str) -> String {
    PgpPublicKey::from_armored(public_armored.as_bytes())
        .unwrap()
        .fingerprint()
        .to_uppercase()
}

fn gnupg_encrypts_and_tkm_decrypts(kind: PgpKeyKind) {
    let (secret, public) = generate(kind, "tkm <tkm@localhost>", None).unwrap();
    let key = PgpKey::from_armored(secret.as_bytes(), None).unwrap();
    let gpg = Gpg::new();
    gpg.import(public.as_bytes());
    let recipient = fingerprint_of(&public);
    for compress in ["zip", "zlib", "bzip2", "none"] {
        for armor in [true, false] {
            let message = gpg.encrypt(&recipient, compress, armor, EVENT);
            assert_eq!(message.starts_with(b"-----BEGIN PGP MESSAGE-----"), armor);
            let plaintext = key
                .decrypt(&message, 4096)
                .unwrap_or_else(|e| panic!("{kind} {compress} armor={armor}: {e}"));
            assert_eq!(
                plaintext.as_slice(),
                EVENT,
                "{kind} {compress} armor={armor}"
            );
        }
    }
}

#[test]
fn gnupg_encrypts_to_a_tkm_curve25519_key_and_tkm_decrypts() {
    gnupg_encrypts_and_tkm_decrypts(PgpKeyKind::Curve25519);
}

#[test]
fn gnupg_encrypts_to_a_tkm_rsa2048_key_and_tkm_decrypts() {
    gnupg_encrypts_and_tkm_decrypts(PgpKeyKind::Rsa2048);
}

#[test]
fn gnupg_signed_and_anonymous_recipient_messages_decrypt() {
    for kind in [PgpKeyKind::Curve25519, PgpKeyKind::Rsa2048] {
        let (secret, public) = generate(kind, "tkm <tkm@localhost>", None).unwrap();
        let key = PgpKey::from_armored(secret.as_bytes(), None).unwrap();
        let gpg = Gpg::new();
        gpg.import(public.as_bytes());
        let recipient = fingerprint_of(&public);
        let signer = gpg.make_key("ed25519", None, "");
        let signed = gpg.run(
            &[
                "--sign",
                "--encrypt",
                "--local-user",
                &signer,
                "--recipient",
                &recipient,
            ],
            EVENT,
        );
        assert_eq!(
            key.decrypt(&signed, 4096).unwrap().as_slice(),
            EVENT,
            "{kind} signed"
        );
        let anonymous = gpg.run(
            &[
                "--encrypt",
                "--throw-keyids",
                "--recipient",
                &recipient,
                "--armor",
            ],
            EVENT,
        );
        assert_eq!(
            key.decrypt(&anonymous, 4096).unwrap().as_slice(),
            EVENT,
            "{kind} anonymous"
        );
    }
}

#[test]
fn tkm_keys_carry_aes_sha2_and_zlib_preferences_for_gnupg() {
    for kind in [PgpKeyKind::Curve25519, PgpKeyKind::Rsa2048] {
        let (_, public) = generate(kind, "tkm <tkm@localhost>", None).unwrap();
        let gpg = Gpg::new();
        let packets = String::from_utf8(gpg.run(&["--list-packets"], public.as_bytes())).unwrap();
        assert!(packets.contains("pref-sym-algos: 9 8 7"), "{packets}");
        assert!(packets.contains("pref-hash-algos: 8 10"), "{packets}");
        assert!(packets.contains("pref-zip-algos: 2 1 0"), "{packets}");
    }
}

#[test]
fn tkm_encrypts_to_gnupg_keys_and_gnupg_decrypts() {
    let gpg = Gpg::new();
    for (primary, subkey) in [("ed25519", "cv25519"), ("rsa2048", "rsa2048")] {
        let fpr = gpg.make_key(primary, Some(subkey), "");
        let public = gpg.run(&["--export", "--armor", &fpr], b"");
        for armored in [true, false] {
            let message = encrypt_to(&public, EVENT, armored).unwrap();
            assert_eq!(
                gpg.decrypt(&message),
                EVENT,
                "{primary}/{subkey} armored={armored}"
            );
        }
    }
}

#[test]
fn a_gnupg_rsa_key_without_an_encryption_subkey_is_refused_for_encryption() {
    let gpg = Gpg::new();
    let fpr = gpg.make_key("rsa2048", None, "");
    let public = gpg.run(&["--export", &fpr], b"");
    assert!(matches!(
        encrypt_to(&public, EVENT, true),
        Err(PgpError::InvalidPublicKey(_))
    ));
}

#[test]
fn the_legacy_bouncycastle_message_decrypts_to_its_44_bytes() {
    let secret = std::fs::read(format!("{FIXTURE}junit_pgp_private.asc")).unwrap();
    let message = std::fs::read(format!("{FIXTURE}TKM.acquirer.junit.csv.pgp")).unwrap();
    let key = PgpKey::from_armored(&secret, Some(&SecretString::from("passphrase"))).unwrap();
    let plaintext = key.decrypt(&message, 1024).unwrap();
    assert_eq!(
        plaintext.as_slice(),
        b"0000000000;02;0000000\r\n0000000001;02;0000001"
    );
    assert_eq!(plaintext.len(), 44);
    assert_eq!(
        key.fingerprint(),
        "9431379a625855e84f3e277fdff65631ddbcdb46"
    );
}

#[test]
fn passphrase_protected_gnupg_keys_load_with_their_passphrase_and_decrypt() {
    let gpg = Gpg::new();
    let passphrase = "an Italian card holder's secret";
    for (primary, subkey) in [("ed25519", "cv25519"), ("rsa2048", "rsa2048")] {
        let fpr = gpg.make_key(primary, Some(subkey), passphrase);
        let secret = gpg.run(
            &[
                "--passphrase",
                passphrase,
                "--export-secret-keys",
                "--armor",
                &fpr,
            ],
            b"",
        );
        let wrong = SecretString::from("not it");
        assert!(matches!(
            PgpKey::from_armored(&secret, Some(&wrong)),
            Err(PgpError::Passphrase)
        ));
        let key = PgpKey::from_armored(&secret, Some(&SecretString::from(passphrase))).unwrap();
        assert_eq!(key.fingerprint().to_uppercase(), fpr);
        for compress in ["zlib", "none"] {
            let message = gpg.encrypt(&fpr, compress, true, EVENT);
            assert_eq!(key.decrypt(&message, 4096).unwrap().as_slice(), EVENT);
        }
    }
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn a_key_loads_from_settings_and_its_public_file_must_match() {
    let dir = TempDir::new();
    let passphrase = SecretString::from("files");
    let (secret, public) = generate(
        PgpKeyKind::Curve25519,
        "tkm <tkm@localhost>",
        Some(&passphrase),
    )
    .unwrap();
    let (_, other_public) = generate(PgpKeyKind::Curve25519, "other <o@localhost>", None).unwrap();
    let mut settings = PgpSettings {
        private_key_file: write(&dir.0, "private.asc", secret.as_bytes()),
        passphrase_file: Some(write(&dir.0, "passphrase", b"files\n")),
        public_key_file: write(&dir.0, "public.asc", public.as_bytes()),
    };
    let key = PgpKey::load(&settings).unwrap();
    let message = encrypt_to(public.as_bytes(), EVENT, true).unwrap();
    assert_eq!(key.decrypt(&message, 4096).unwrap().as_slice(), EVENT);

    settings.public_key_file = write(&dir.0, "other.asc", other_public.as_bytes());
    let err = PgpKey::load(&settings).unwrap_err();
    assert!(err.to_string().contains("pgp.public_key_file"), "{err}");

    settings.public_key_file = dir.0.join("public.asc");
    settings.passphrase_file = None;
    assert!(matches!(PgpKey::load(&settings), Err(PgpError::Passphrase)));
}

#[test]
fn tkm_pgp_generate_writes_a_private_file_0600_and_refuses_to_overwrite() {
    let dir = TempDir::new();
    let private = dir.0.join("keys/pgp-private.asc");
    let public = dir.0.join("keys/pgp-public.asc");
    let passphrase = write(&dir.0, "passphrase", b"cli secret\n");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tkm"))
            .args(["pgp", "generate", "--out-private"])
            .arg(&private)
            .arg("--out-public")
            .arg(&public)
            .arg("--passphrase-file")
            .arg(&passphrase)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let secret = std::fs::read(&private).unwrap();
    let public_armored = std::fs::read_to_string(&public).unwrap();
    assert!(secret.starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----"));
    let key = PgpKey::from_armored(&secret, Some(&SecretString::from("cli secret"))).unwrap();
    assert_eq!(
        fingerprint_of(&public_armored),
        key.fingerprint().to_uppercase()
    );

    let out = run(&["--kind", "curve25519"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read(&private).unwrap(), secret);

    let out = run(&["--force", "--kind", "nonsense"]);
    assert!(!out.status.success());
    let out = run(&["--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(std::fs::read(&private).unwrap(), secret);

    let gpg = Gpg::new();
    gpg.import(&std::fs::read(&public).unwrap());
}

#[test]
fn a_gnupg_subkeys_only_export_with_a_stub_primary_loads_and_decrypts() {
    let gpg = Gpg::new();
    let fpr = gpg.make_key("ed25519", Some("cv25519"), "offline primary");
    let secret = gpg.run(
        &[
            "--passphrase",
            "offline primary",
            "--export-secret-subkeys",
            "--armor",
            &fpr,
        ],
        b"",
    );
    let wrong = SecretString::from("wrong");
    assert!(matches!(
        PgpKey::from_armored(&secret, Some(&wrong)),
        Err(PgpError::Passphrase)
    ));
    let key = PgpKey::from_armored(&secret, Some(&SecretString::from("offline primary"))).unwrap();
    let message = gpg.encrypt(&fpr, "zlib", false, EVENT);
    assert_eq!(key.decrypt(&message, 4096).unwrap().as_slice(), EVENT);
}
