//! The command line without a broker: a bad config value, `config show`, `keys generate`.
//! What runs against a broker (`serve`, README's run) is in `tests/kafka/cli.rs`.

use std::process::Command;

#[test]
fn a_bad_config_value_stops_start_up_with_one_line_naming_the_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .arg("serve")
        .env("RISKOS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env("RISKOS_SCHEMA_REGISTRY__URL", "http://127.0.0.1:1")
        .env("RISKOS_HTTP__MAX_BODY_BYTES", "lots")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("max_body_bytes"), "{stderr}");
}

/// `config show` prints the config, and the `kafka.librdkafka` passthrough map, the typed
/// `[kafka.tls]` / `[kafka.sasl]` keys and the registry's auth hold credentials: set from the
/// file (dotted keys) or env vars (`_` keys), none is printed.
#[test]
fn config_show_prints_no_kafka_or_registry_secret_set_in_the_file_or_the_env() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[[endpoints]]\nname = \"riskos\"\n[endpoints.auth]\nmode = \"none\"\n[kafka]\n\
         bootstrap_servers = \"127.0.0.1:1\"\n[kafka.librdkafka]\n\
         \"security.protocol\" = \"SASL_SSL\"\n\"sasl.username\" = \"svc-user\"\n\
         \"sasl.password\" = \"pw-from-file\"\n\"ssl.key.pem\" = \"PEM-FROM-FILE\"\n\
         \"sasl.oauthbearer.config\" = \"clientSecret=cfg-from-file\"\n\
         [kafka.tls]\nenabled = true\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n\
         key_password = \"typed-key-pw\"\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\n\
         username = \"svc-typed\"\npassword = \"typed-sasl-pw\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .args(["config", "show", "--config"])
        .arg(&config)
        .env_remove("RISKOS_CONFIG")
        .env("RISKOS_SCHEMA_REGISTRY__URL", "http://127.0.0.1:1")
        .env(
            "RISKOS_KAFKA__LIBRDKAFKA__SASL_OAUTHBEARER_CLIENT_SECRET",
            "oauth-from-env",
        )
        .env("RISKOS_KAFKA__LIBRDKAFKA__SSL_KEY_PASSWORD", "314159")
        .env("RISKOS_KAFKA__SASL__OIDC__CLIENT_SECRET", "oidc-from-env")
        .env("RISKOS_SCHEMA_REGISTRY__BEARER_TOKEN", "bearer-from-env")
        .env(
            "RISKOS_KAFKA__LIBRDKAFKA__SSL_KEYSTORE_PASSWORD",
            "ks-from-env",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in [
        "pw-from-file",
        "PEM-FROM-FILE",
        "cfg-from-file",
        "oauth-from-env",
        "314159",
        "ks-from-env",
        "typed-key-pw",
        "typed-sasl-pw",
        "oidc-from-env",
        "bearer-from-env",
    ] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
    }
    // The keys and the other properties still show.
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let properties = &printed["kafka"]["librdkafka"];
    assert_eq!(properties["sasl.password"], "[redacted]", "{properties}");
    assert_eq!(properties["ssl_key_password"], "[redacted]", "{properties}");
    assert_eq!(properties["security.protocol"], "SASL_SSL");
    assert_eq!(properties["sasl.username"], "svc-user");
    assert_eq!(printed["kafka"]["sasl"]["username"], "svc-typed");
    assert_eq!(printed["kafka"]["sasl"]["password"], "[redacted]");
}

/// `keys generate` without `--kid` never repeats an id (a key made again must not be taken for
/// an earlier one by its id), and prints the key's fingerprint on stderr, the key alone on
/// stdout.
#[test]
fn keys_generate_picks_a_fresh_id_each_time_and_prints_the_fingerprint_apart() {
    let generate = || {
        let output = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
            .args(["keys", "generate"])
            .output()
            .unwrap();
        assert!(output.status.success());
        (
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (first, first_err) = generate();
    let (second, _) = generate();
    let kid = |line: &str| line.trim().split_once(':').unwrap().0.to_string();
    assert_ne!(kid(&first), kid(&second), "{first}{second}");
    assert_ne!(kid(&first), "k1");
    assert_eq!(first.lines().count(), 1, "{first}");
    let keys =
        riskos_connector::pipeline::protect::Keyring::from_lines(&[first.trim()], &[]).unwrap();
    let fingerprint = keys.hash(b"x").split('.').nth(2).unwrap().to_string();
    assert!(
        first_err.contains(&kid(&first)) && first_err.contains(&fingerprint),
        "{first_err}"
    );
}
