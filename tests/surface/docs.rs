//! What README and `docs/` state about the code, checked against the code: the configuration
//! reference (`docs/configuration.md`) against the config structs both ways, their field docs
//! and `config.example.toml`; the paths an endpoint may not take, the reason for the ack-timeout
//! ceiling, what the protection promise leaves in clear, no shipped feature called planned,
//! links, the connect page's recipes, and a README that stays short and maps `docs/`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use riskos_connector::common::setting::SettingError;
use riskos_connector::ingress::endpoint::RESERVED_PATHS;
use riskos_connector::wiring::config::{Config, EndpointConfig, MAX_ACK_TIMEOUT_MS};
use serde_json::Value as Json;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// The configuration reference: one table row per key (or per group of sibling keys).
const REFERENCE: &str = "docs/configuration.md";

/// The reference's table row whose first cell starts with the key `key`.
fn reference_row(key: &str) -> String {
    let start = format!("| `{key}`");
    read(REFERENCE)
        .lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("{REFERENCE} has no row for `{key}`"))
        .to_string()
}

/// The code spans of a text, in order.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Every dotted key of a serialized config section with its value (maps recursed, anything else
/// a leaf: a list, an empty map such as `kafka.librdkafka`, a value, `null` for an unset one).
fn leaf_keys(value: &Json, path: &str, out: &mut BTreeMap<String, Json>) {
    match value {
        Json::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                leaf_keys(inner, &format!("{path}.{key}"), out);
            }
        }
        _ => {
            out.insert(path.to_string(), value.clone());
        }
    }
}

/// Every key the config structs have, as `config show` prints them: the defaults, with one
/// endpoint's keys under `endpoints` (every field serializes, an unset one as `null`).
fn setting_keys() -> BTreeMap<String, Json> {
    let mut config = serde_json::to_value(Config::default()).unwrap();
    let endpoint = serde_json::to_value(EndpointConfig::new("riskos")).unwrap();
    config.as_object_mut().unwrap().remove("endpoints");
    let mut keys = BTreeMap::new();
    for (section, value) in config.as_object().unwrap() {
        leaf_keys(value, section, &mut keys);
    }
    leaf_keys(&endpoint, "endpoints", &mut keys);
    keys
}

/// Whether `key` names a setting: a key of [`setting_keys`], a section holding some (`endpoints`,
/// `kafka.sasl`), or an entry under a list or map one (`kafka.librdkafka."linger.ms"`,
/// `endpoints.required_headers.name`).
fn names_a_setting(key: &str, settings: &BTreeMap<String, Json>) -> bool {
    settings.contains_key(key)
        || settings.keys().any(|k| k.starts_with(&format!("{key}.")))
        || key.match_indices('.').any(|(at, _)| {
            matches!(
                settings.get(&key[..at]),
                Some(Json::Array(_) | Json::Object(_))
            )
        })
}

/// The keys the reference documents, each with its line: a row's first cell names a key, then
/// siblings by their last part ("`schema_registry.username` / `password` / `password_file`").
fn reference_keys() -> Vec<(usize, String)> {
    let mut documented = Vec::new();
    for (index, line) in read(REFERENCE).lines().enumerate() {
        if !line.starts_with("| `") {
            continue;
        }
        let cell = line.split('|').nth(1).unwrap();
        let names = code_spans(cell);
        let parent = names[0].rsplit_once('.').map_or("", |(parent, _)| parent);
        documented.push((index + 1, names[0].to_string()));
        documented.extend(
            names[1..]
                .iter()
                .map(|name| (index + 1, format!("{parent}.{name}"))),
        );
    }
    documented
}

#[test]
fn every_setting_has_a_row_in_the_configuration_reference() {
    let documented: Vec<String> = reference_keys().into_iter().map(|(_, key)| key).collect();
    let missing: Vec<String> = setting_keys()
        .into_keys()
        .filter(|k| !documented.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "settings without a row in {REFERENCE}: {missing:?}"
    );
}

#[test]
fn every_row_of_the_configuration_reference_names_a_setting() {
    let settings = setting_keys();
    let documented = reference_keys();
    assert!(
        documented.len() > 100,
        "{REFERENCE}: {} keys",
        documented.len()
    );
    let unknown: Vec<String> = documented
        .into_iter()
        .filter(|(_, key)| !names_a_setting(key, &settings))
        .map(|(line, key)| format!("{REFERENCE}:{line}: `{key}`"))
        .collect();
    assert!(
        unknown.is_empty(),
        "rows documenting a key the config structs do not have: {unknown:#?}"
    );
}

#[test]
fn the_defaults_in_the_configuration_reference_are_the_code_defaults() {
    // A default cell made only of code spans, one per key of its row (`300` / `10`), states
    // the values `Config::default()` has; other cells (`none`, "an equal share") say it in
    // words. Rows naming no key fail `every_row_of_the_configuration_reference_names_a_setting`.
    let settings = setting_keys();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (index, line) in read(REFERENCE).lines().enumerate() {
        if !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        let names = code_spans(cells[1]);
        let parent = names[0].rsplit_once('.').map_or("", |(parent, _)| parent);
        let keys = std::iter::once(names[0].to_string())
            .chain(names[1..].iter().map(|name| format!("{parent}.{name}")));
        let stated = code_spans(cells[2]);
        let only_spans = cells[2]
            .trim()
            .split(" / ")
            .all(|part| part.len() > 1 && part.starts_with('`') && part.ends_with('`'));
        if !only_spans || stated.len() != names.len() {
            continue;
        }
        for (key, stated) in keys.zip(stated) {
            let Some(value) = settings.get(&key) else {
                continue;
            };
            // `<name>`: the endpoint's, `riskos` in `setting_keys`.
            let stated = stated.replace("<name>", "riskos");
            let stated = stated.as_str();
            let same = match value {
                // Unset: the default is applied where the key is used (`schema_registry.timeout_ms`).
                Json::Null => continue,
                Json::String(s) => s == stated,
                _ => serde_json::from_str::<Json>(stated).is_ok_and(|v| &v == value),
            };
            checked += 1;
            if !same {
                wrong.push(format!(
                    "{REFERENCE}:{}: `{key}` is {value}, not `{stated}`",
                    index + 1
                ));
            }
        }
    }
    assert!(checked > 50, "{checked} defaults checked");
    assert!(
        wrong.is_empty(),
        "defaults the code does not have: {wrong:#?}"
    );
}

/// A field of a struct in `connector/`, as its source declares it.
struct Field {
    name: String,
    ty: String,
    /// A `///` comment right above it (attributes between allowed).
    documented: bool,
}

/// The structs of `connector/**/*.rs` that derive `Deserialize`, by name, with their fields.
fn deserialized_structs() -> HashMap<String, Vec<Vec<Field>>> {
    let mut structs: HashMap<String, Vec<Vec<Field>>> = HashMap::new();
    let mut paths = vec![root().join("connector")];
    while let Some(path) = paths.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                paths.push(entry.unwrap().path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            let head = line.trim_start();
            let indent = &line[..line.len() - head.len()];
            let head = head
                .strip_prefix("pub(crate) ")
                .or_else(|| head.strip_prefix("pub "))
                .unwrap_or(head);
            let Some(name) = head
                .strip_prefix("struct ")
                .filter(|rest| rest.ends_with('{'))
                .map(|rest| rest.trim_end_matches('{').trim())
            else {
                continue;
            };
            let derives_deserialize = lines[..at]
                .iter()
                .rev()
                .take_while(|l| {
                    let l = l.trim_start();
                    l.starts_with("#[") || l.starts_with("///")
                })
                .any(|l| l.contains("#[derive(") && l.contains("Deserialize"));
            if !derives_deserialize {
                continue;
            }
            let end = format!("{indent}}}");
            let mut fields = Vec::new();
            for (offset, field) in lines[at + 1..].iter().enumerate() {
                if *field == end {
                    break;
                }
                let field = field.trim();
                let bare = field
                    .strip_prefix("pub(crate) ")
                    .or_else(|| field.strip_prefix("pub "))
                    .unwrap_or(field);
                if field.starts_with("//") || field.starts_with("#[") {
                    continue;
                }
                let Some((name, ty)) = bare.split_once(':') else {
                    continue;
                };
                let name = name.trim().trim_start_matches("r#");
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                let above = lines[..at + 1 + offset]
                    .iter()
                    .rev()
                    .map(|l| l.trim())
                    .find(|l| !l.starts_with("#["));
                fields.push(Field {
                    name: name.to_string(),
                    ty: ty.trim().trim_end_matches(',').to_string(),
                    documented: above.is_some_and(|l| l.starts_with("///")),
                });
            }
            structs.entry(name.to_string()).or_default().push(fields);
        }
    }
    structs
}

#[test]
fn every_setting_has_a_doc_comment_on_its_field() {
    let structs = deserialized_structs();
    let mut undocumented = Vec::new();
    for key in setting_keys().into_keys() {
        // Walk the key from `Config` down, field by field, through the field's type: the last
        // name in it that is a deserialized struct (`Vec<EndpointConfig>` → `EndpointConfig`).
        let mut current = vec!["Config".to_string()];
        for part in key.split('.') {
            let fields: Vec<&Field> = current
                .iter()
                .flat_map(|name| structs.get(name).into_iter().flatten())
                .filter_map(|fields| fields.iter().find(|f| f.name == part))
                .collect();
            if fields.is_empty() {
                undocumented.push(format!("`{key}`: no field `{part}` in {current:?}"));
                break;
            }
            if let Some(field) = fields.iter().find(|f| !f.documented) {
                undocumented.push(format!("`{key}`: field `{}` has no `///` doc", field.name));
                break;
            }
            current = fields
                .iter()
                .filter_map(|f| {
                    f.ty.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .rfind(|name| structs.contains_key(*name))
                        .map(String::from)
                })
                .collect();
        }
    }
    assert!(
        undocumented.is_empty(),
        "settings whose field says nothing of them: {undocumented:#?}"
    );
}

#[test]
fn the_example_config_names_only_settings_that_exist() {
    // Every key of `config.example.toml`, set or commented out (`# [http.tls]`, `# cert_file = …`).
    let settings = setting_keys();
    let mut table = String::new();
    let mut named = 0;
    let mut unknown = Vec::new();
    for (index, line) in read("config.example.toml").lines().enumerate() {
        let line = line.trim_start();
        let line = line.strip_prefix('#').map_or(line, str::trim_start);
        let is_key = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.".contains(c))
        };
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.trim_start_matches('[').split(']').next().unwrap();
            if is_key(name) {
                table = name.to_string();
            }
            continue;
        }
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        if !is_key(key) {
            continue;
        }
        named += 1;
        let key = format!("{table}.{key}");
        if !names_a_setting(&key, &settings) {
            unknown.push(format!("config.example.toml:{}: `{key}`", index + 1));
        }
    }
    assert!(named > 50, "config.example.toml: {named} keys");
    assert!(
        unknown.is_empty(),
        "keys in config.example.toml the config structs do not have: {unknown:#?}"
    );
}

#[test]
fn the_reference_names_every_path_an_endpoint_may_not_take() {
    let row = reference_row("endpoints.path");
    let meaning = row.split('|').nth(3).unwrap();
    let named: Vec<&str> = code_spans(meaning)
        .into_iter()
        .filter(|span| span.starts_with('/'))
        .collect();
    assert_eq!(named, RESERVED_PATHS, "{row}");
}

#[test]
fn the_ack_timeout_ceiling_is_explained_by_the_strictest_sender() {
    // Request-token senders (Alloy) give up after 10 s, RiskOS after 30 s: the reply, even a
    // 408 at `http.request_timeout_ms`, must reach the strictest one in time.
    const REQUEST_TOKEN_SENDER_TIMEOUT_MS: u64 = 10_000;
    const RISKOS_TIMEOUT_MS: u64 = 30_000;
    let defaults = Config::default();
    const _: () = assert!(MAX_ACK_TIMEOUT_MS < REQUEST_TOKEN_SENDER_TIMEOUT_MS);
    assert!(defaults.http.request_timeout_ms < REQUEST_TOKEN_SENDER_TIMEOUT_MS);
    let row = reference_row("delivery.ack_timeout_ms");
    for stated in [
        format!("at most {MAX_ACK_TIMEOUT_MS}"),
        format!("after {} s", REQUEST_TOKEN_SENDER_TIMEOUT_MS / 1000),
        "Alloy".to_string(),
        format!("RiskOS waits {} s", RISKOS_TIMEOUT_MS / 1000),
    ] {
        assert!(
            row.contains(&stated),
            "the row should say `{stated}`: {row}"
        );
    }
}

#[test]
fn the_protection_promise_says_what_it_leaves_in_clear() {
    // `extra` (top-level fields outside the envelope) is a field of every shipped schema and
    // no policy reaches it: marks sit under `data` or on `description`.
    for entry in std::fs::read_dir(root().join("schemas")).unwrap() {
        let path = entry.unwrap().path();
        let schema: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let extra = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "extra")
            .unwrap_or_else(|| panic!("{} has no `extra`", path.display()));
        assert!(extra.get("riskos.protect").is_none(), "{}", path.display());
    }
    let page = read("docs/records.md");
    let section = page
        .split("\n## Personal data protection\n")
        .nth(1)
        .unwrap();
    let promise = section.split("\n- **fields**").next().unwrap();
    assert!(promise.contains("reaches Kafka in clear"), "{promise}");
    for caveat in ["`extra`", "`customer_metadata`", "unmarked"] {
        assert!(
            promise.contains(caveat),
            "docs/records.md's protection promise should name {caveat} where it is made: {promise}"
        );
    }
}

#[test]
fn no_doc_calls_partitioning_by_entity_planned() {
    let mut partitioned_by = Vec::new();
    for entry in std::fs::read_dir(root().join("schemas")).unwrap() {
        let schema: Json =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        if let Some(path) = schema["riskos.partition_by"].as_str() {
            partitioned_by.push(path.to_string());
        }
    }
    assert!(!partitioned_by.is_empty());
    for doc in [
        "README.md",
        "docs/records.md",
        "docs/protection.md",
        "docs/consumers.md",
        "docs/architecture.md",
    ] {
        for line in read(doc).lines() {
            let about_partitioning = line.contains("partition")
                || partitioned_by
                    .iter()
                    .any(|field| line.contains(&format!("`{field}`")));
            assert!(
                !(about_partitioning && line.to_lowercase().contains("planned")),
                "{doc} calls partitioning by entity planned; it is shipped: {line}"
            );
        }
    }
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor_of(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn links_between_the_docs_reach_a_file_and_heading() {
    let mut docs = vec![
        root().join("README.md"),
        root().join("helm/riskos-connector/README.md"),
    ];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    let mut broken = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for link in text.split("](").skip(1) {
            let Some(target) = link.split(')').next() else {
                continue;
            };
            if target.contains("://") || target.contains(char::is_whitespace) {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(file)
            };
            if !file.exists() {
                broken.push(format!("{}: {target} (no such file)", doc.display()));
                continue;
            }
            if anchor.is_empty() || file.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let headings = std::fs::read_to_string(&file).unwrap();
            if !headings
                .lines()
                .filter(|l| l.starts_with('#'))
                .any(|l| anchor_of(l) == anchor)
            {
                broken.push(format!("{}: {target} (no such heading)", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

/// One ```toml block of a page, with the headings it sits under and the line it starts on.
struct Recipe {
    /// `Amazon MSK / IAM access control`: the `##` heading, then the `###` one if any.
    heading: String,
    line: usize,
    toml: String,
}

/// Every ```toml block of `page`, skipping other fenced blocks (their `#` lines are no headings).
fn toml_recipes(page: &str) -> Vec<Recipe> {
    let (mut h2, mut h3) = (String::new(), String::new());
    let mut recipes = Vec::new();
    let mut open: Option<Recipe> = None;
    let mut in_other_fence = false;
    for (index, line) in page.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        if let Some(recipe) = open.as_mut() {
            if fence {
                recipes.extend(open.take());
            } else {
                recipe.toml.push_str(line);
                recipe.toml.push('\n');
            }
        } else if in_other_fence {
            in_other_fence = !fence;
        } else if fence && line.trim() == "```toml" {
            let heading = if h3.is_empty() {
                h2.clone()
            } else {
                format!("{h2} / {h3}")
            };
            open = Some(Recipe {
                heading,
                line: index + 1,
                toml: String::new(),
            });
        } else if fence {
            in_other_fence = true;
        } else if let Some(title) = line.strip_prefix("## ") {
            (h2, h3) = (title.trim().to_string(), String::new());
        } else if let Some(title) = line.strip_prefix("### ") {
            h3 = title.trim().to_string();
        }
    }
    assert!(open.is_none() && !in_other_fence, "an unclosed code block");
    recipes
}

/// What a recipe needs beside it to be a whole config: one endpoint (open, so no credential).
const MINIMAL_ENDPOINT: &str =
    "\n[[endpoints]]\nname = \"riskos\"\n[endpoints.auth]\nmode = \"none\"\n";

/// The vendors `docs/connect.md` promises a recipe for, as its `##` headings name them.
const VENDORS: [&str; 6] = [
    "Confluent Cloud",
    "Amazon MSK",
    "Aiven",
    "Redpanda",
    "Azure Event Hubs",
    "Strimzi",
];

/// Facts of each vendor's connection, from its own documentation, that its recipes must keep:
/// (heading part, port, SASL mechanisms allowed, a private CA needed).
const VENDOR_FACTS: [(&str, Option<&str>, &[&str], bool); 6] = [
    (
        "Confluent Cloud",
        Some(":9092"),
        &["PLAIN", "OAUTHBEARER"],
        false,
    ),
    ("Amazon MSK / IAM", Some(":9098"), &["AWS_MSK_IAM"], false),
    (
        "Amazon MSK / SASL/SCRAM",
        Some(":9096"),
        &["SCRAM-SHA-512"],
        false,
    ),
    (
        "Aiven",
        None,
        &["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
        true,
    ),
    ("Azure Event Hubs", Some(":9093"), &["PLAIN"], false),
    ("Strimzi", None, &["", "SCRAM-SHA-512"], true),
];

#[test]
fn every_recipe_on_the_connect_page_loads_with_the_config_loader() {
    let page = read("docs/connect.md");
    let recipes = toml_recipes(&page);
    assert!(
        recipes.len() >= 8,
        "docs/connect.md: {} toml blocks",
        recipes.len()
    );
    let dir = tempfile::tempdir().unwrap();
    for (index, recipe) in recipes.iter().enumerate() {
        let place = format!("docs/connect.md:{} ({})", recipe.line, recipe.heading);
        let mut text = recipe.toml.clone();
        if !text.contains("[[endpoints]]") {
            text.push_str(MINIMAL_ENDPOINT);
        }
        let file = dir.path().join(format!("recipe-{index}.toml"));
        std::fs::write(&file, &text).unwrap();
        // The loader `serve` and `config check` use: unknown keys (`deny_unknown_fields`) and
        // values that do not validate fail here, by name.
        let config = Config::load(Some(&file)).unwrap_or_else(|e| panic!("{place}: {e}"));
        let kafka = &config.kafka;
        let registry = &config.schema_registry;

        // Secrets only as `*_file` keys, never inline, in the typed keys or the passthrough.
        let inline = [
            ("kafka.sasl.password", kafka.sasl.password.is_some()),
            (
                "kafka.sasl.oidc.client_secret",
                kafka.sasl.oidc.client_secret.is_some(),
            ),
            ("kafka.tls.key_password", kafka.tls.key_password.is_some()),
            ("schema_registry.password", registry.password.is_some()),
            (
                "schema_registry.bearer_token",
                registry.bearer_token.is_some(),
            ),
            (
                "schema_registry.oauth.client_secret",
                registry.oauth.client_secret.is_some(),
            ),
        ];
        for (key, set) in inline {
            assert!(!set, "{place}: `{key}` inline; recipes name a `{key}_file`");
        }
        for key in kafka.librdkafka.keys() {
            let key = key.to_lowercase();
            assert!(
                !["password", "secret", "pem"]
                    .iter()
                    .any(|s| key.contains(s)),
                "{place}: `kafka.librdkafka.{key}` carries a secret; use the typed `*_file` keys"
            );
        }

        // Loading read none of the files it names: none of them exists here.
        let files = [
            &kafka.tls.ca_file,
            &kafka.tls.cert_file,
            &kafka.tls.key_file,
            &kafka.tls.key_password_file,
            &kafka.sasl.password_file,
            &kafka.sasl.oidc.client_secret_file,
            &kafka.sasl.oidc.ca_file,
            &registry.password_file,
            &registry.bearer_token_file,
            &registry.oauth.client_secret_file,
            &registry.ca_file,
            &registry.cert_file,
            &registry.key_file,
        ];
        for path in files.into_iter().flatten() {
            assert!(
                !path.exists(),
                "{place}: {} exists on this machine",
                path.display()
            );
        }
        // They are read when a Kafka client is made: a secret file the recipe names is then
        // missed by its key (the TLS section's before the SASL one's).
        let secret_file = [
            (
                "kafka.tls.key_password",
                kafka.tls.key_password_file.is_some(),
            ),
            ("kafka.sasl.password", kafka.sasl.password_file.is_some()),
            (
                "kafka.sasl.oidc.client_secret",
                kafka.sasl.oidc.client_secret_file.is_some(),
            ),
        ]
        .into_iter()
        .find(|(_, set)| *set);
        match (kafka.security_properties(), secret_file) {
            (Ok(_), None) => {}
            (Err(SettingError::File { key, .. }), Some((expected, _))) => {
                assert_eq!(key, expected, "{place}")
            }
            (result, expected) => panic!(
                "{place}: client properties {result:?}, expected a missing file for {expected:?}"
            ),
        }

        // The vendor's own facts: port, mechanism, TLS, a private CA where it has one.
        let shown = serde_json::to_value(&config).unwrap();
        let mechanism = shown["kafka"]["sasl"]["mechanism"].as_str().unwrap_or("");
        for (part, port, mechanisms, private_ca) in VENDOR_FACTS {
            if !recipe.heading.starts_with(part) {
                continue;
            }
            assert!(kafka.tls.enabled, "{place}: {part} takes TLS only");
            if let Some(port) = port {
                for broker in kafka.bootstrap_servers.split(',') {
                    assert!(
                        broker.ends_with(port),
                        "{place}: {part} listens on {port}: {broker}"
                    );
                }
            }
            assert!(
                mechanisms.contains(&mechanism),
                "{place}: {part} takes {mechanisms:?}, not {mechanism:?}"
            );
            assert_eq!(
                kafka.tls.ca_file.is_some(),
                private_ca,
                "{place}: kafka.tls.ca_file"
            );
        }
        if recipe.heading.starts_with("Azure Event Hubs") {
            assert_eq!(
                kafka.sasl.username.as_deref(),
                Some("$ConnectionString"),
                "{place}"
            );
            let compression = kafka.librdkafka.get("compression.type").map(String::as_str);
            assert!(
                matches!(compression, Some("none" | "gzip")),
                "{place}: Event Hubs takes gzip or no compression, not the default lz4"
            );
            assert!(
                !config.topics.create,
                "{place}: Event Hubs has no Kafka topic management"
            );
        }
    }
}

#[test]
fn the_connect_page_has_a_checked_recipe_for_each_vendor() {
    let page = read("docs/connect.md");
    let recipes = toml_recipes(&page);
    let sections: Vec<(&str, &str)> = page
        .split("\n## ")
        .skip(1)
        .map(|section| section.split_once('\n').unwrap_or((section, "")))
        .collect();
    for vendor in VENDORS {
        let (_, body) = sections
            .iter()
            .find(|(title, _)| title.trim() == vendor)
            .unwrap_or_else(|| panic!("docs/connect.md has no `## {vendor}` section"));
        assert!(
            recipes.iter().any(|r| r.heading.starts_with(vendor)),
            "docs/connect.md: `## {vendor}` has no toml recipe"
        );
        let lower = body.to_lowercase();
        assert!(
            lower.contains("acl") || lower.contains("access:"),
            "docs/connect.md: `## {vendor}` should say how to grant the connector access"
        );
        let checks: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("**Check:**"))
            .collect();
        assert!(
            !checks.is_empty()
                && checks
                    .iter()
                    .all(|l| l.contains("`riskos-connector config check --config ")),
            "docs/connect.md: every **Check:** of `## {vendor}` should give the command"
        );
        assert!(
            body.contains("**Helm:**"),
            "docs/connect.md: `## {vendor}` has no Helm values"
        );
    }
    for part in ["Amazon MSK / IAM", "Amazon MSK / SASL/SCRAM"] {
        assert!(
            recipes.iter().any(|r| r.heading.starts_with(part)),
            "docs/connect.md: no toml recipe under `{part}`"
        );
    }
    assert!(
        read("README.md").contains("](docs/connect.md)"),
        "README should point to docs/connect.md"
    );
}

#[test]
fn the_readme_is_short_and_maps_every_docs_page() {
    // README is for a newcomer (issue 28): what it is, the two commands, a cluster of your own,
    // the status table, and a line for every page of `docs/`, where the rest lives.
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; move detail to docs/"
    );
    let map = readme
        .split("\n## Documentation\n")
        .nth(1)
        .expect("README has a `## Documentation` section");
    let mut unmapped = Vec::new();
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if (name.ends_with(".md") || name.ends_with(".json"))
            && !map.contains(&format!("](docs/{name})"))
        {
            unmapped.push(name);
        }
    }
    assert!(
        unmapped.is_empty(),
        "docs/ pages README's map does not link: {unmapped:?}"
    );
}
