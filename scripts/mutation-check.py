#!/usr/bin/env python3
"""Do the hardening tests guard what they claim? (Outside CI; a few minutes.)

Each entry undoes one fix of the hardening work (issue 11, then issues 24, 25 and 28) in the source, runs the one test
said to cover it, and restores the file: the test must FAIL. A test that still passes is
guarding nothing. An entry whose pattern no longer matches exactly once is reported, not run
(the code moved: update the entry).

    python3 scripts/mutation-check.py          every entry
    python3 scripts/mutation-check.py 3 7      entries 3 and 7

Needs what `scripts/test.sh` installs (Apache Kafka jars for the `kafka`/`clusters`/`isolated` entries; the
`deploy` entries run pytest in `.venv-deploy`, made by `tests/deploy/run.sh`).
"""
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
env = dict(os.environ)
env.setdefault("INTEROP_PYTHON", os.path.join(ROOT, ".venv/bin/python"))

# (what the fix does, file, text of the fix, text without it, test binary, test)
M = [
 ("record size from max_body_bytes", "connector/delivery/record_size.rs",
  "(max_record_bytes(max_body_bytes) + FRAMING_BYTES).max(LIBRDKAFKA_DEFAULT_MESSAGE_MAX_BYTES)",
  "LIBRDKAFKA_DEFAULT_MESSAGE_MAX_BYTES", "kafka", "hardening::a_body_just_under_the_default_limit_is_stored_on_its_topic"),
 ("broker-refused record quarantined", "connector/pipeline/fate.rs",
  "Err(error) if error.is_too_large() =>", "Err(error) if false && error.is_too_large() =>",
  "kafka", "hardening::a_record_kafka_refuses_as_too_large_is_quarantined_raw_and_answered_200"),
 ("header-read deadline", "connector/ingress/http/server.rs",
  '(&open, limits.deadlines, "max_connections")',
  '(&open, Deadlines { header_read: std::time::Duration::from_secs(600), idle: limits.deadlines.idle }, "max_connections")',
  "isolated", "ingress::slow_and_idle_connections_are_closed_at_their_deadlines_while_webhooks_get_through"),
 ("idle keep-alive deadline", "connector/ingress/http/server.rs",
  '(&open, limits.deadlines, "max_connections")',
  '(&open, Deadlines { header_read: limits.deadlines.header_read, idle: std::time::Duration::from_secs(600) }, "max_connections")',
  "isolated", "ingress::slow_and_idle_connections_are_closed_at_their_deadlines_while_webhooks_get_through"),
 ("connection cap", "connector/ingress/http/server.rs",
  "Semaphore::new(limits.max_connections)", "Semaphore::new(Semaphore::MAX_PERMITS)",
  "isolated", "ingress::over_the_connection_cap_a_new_connection_is_closed_at_once"),
 ("source refused before the head", "connector/ingress/http/server.rs",
  "let refused_peer = refuse_peer(peer_ip);", "let refused_peer = { let _ = &refuse_peer; false };",
  "isolated", "ingress::an_address_outside_the_allow_list_is_answered_403_and_cannot_hold_a_connection"),
 ("HMAC slot after verification", "connector/ingress/http/guard.rs",
  "        self.auth.needs_body()\n", "        { let _ = self.auth.needs_body(); false }\n",
  "isolated", "ingress::unsigned_uploads_trickling_in_do_not_starve_signed_webhooks"),
 ("metrics upkeep without scrapes", "connector/common/metrics.rs",
  "            spawn_upkeep(handle.clone());", "            let _ = spawn_upkeep;",
  "isolated", "memory::many_requests_without_a_scrape_leave_the_heap_where_it_was"),
 ("too-deep body quarantined", "connector/pipeline/fate.rs",
  "        if too_deep(body, max_depth) {", "        if false && too_deep(body, max_depth) {",
  "surface", "hardening::a_body_nested_too_deep_is_quarantined_raw_and_answered_400"),
 ("JWT without kid refused", "connector/ingress/auth/oauth2.rs",
  "let kid = header.kid.as_deref().ok_or(Reason::JwtMissingKid)?;",
  "let any_kid = header.kid.clone().or_else(|| { let fetched = self.jwks.as_ref().map(|j| j.keys()).unwrap_or_default(); self.fixed.iter().chain(fetched.iter()).find_map(|k| k.kid.clone()) }); let kid = any_kid.as_deref().ok_or(Reason::JwtMissingKid)?;",
  "surface", "auth::a_jwt_without_a_kid_is_refused_though_the_only_key_verifies_it"),
 ("repeated Authorization refused", "connector/ingress/auth/mod.rs",
  "        Some(_) => Err(RepeatedHeader),", "        Some(_) => { let _ = RepeatedHeader; Ok(first) }",
  "surface", "auth::a_repeated_authorization_header_is_refused_in_every_mode_that_reads_it"),
 ("duplicate JSON key refused", "connector/pipeline/envelope/json.rs",
  "                Entry::Occupied(taken) => {\n                    *self.trail.borrow_mut() = Some(vec![Segment::Key(taken.key().clone())]);\n                    return Err(de::Error::custom(\"duplicate key\"));\n                }",
  "                Entry::Occupied(mut taken) => {\n                    taken.insert(value);\n                }",
  "surface", "auth::a_body_with_a_repeated_key_at_any_depth_is_refused_and_quarantined"),
 ("blank id refused", "connector/pipeline/envelope/mod.rs",
  "if trimmed && text.trim() != text {", "if trimmed && text.trim() != text && false {",
  "surface", "auth::ids_and_types_that_would_make_bad_keys_or_headers_are_refused_and_quarantined"),
 ("control characters refused", "connector/pipeline/envelope/mod.rs",
  "if text.chars().any(char::is_control) {", "if text.chars().any(char::is_control) && false {",
  "surface", "auth::ids_and_types_that_would_make_bad_keys_or_headers_are_refused_and_quarantined"),
 ("charset other than UTF-8 refused", "connector/ingress/http/webhook.rs",
  "!name.trim().eq_ignore_ascii_case(\"charset\")", "true || !name.trim().eq_ignore_ascii_case(\"charset\")",
  "surface", "hardening::a_charset_other_than_utf8_is_415_and_nothing_is_stored"),
 ("Connection: close on a rejection", "connector/ingress/http/error.rs",
  "            .insert(header::CONNECTION, HeaderValue::from_static(\"close\"));",
  "            .remove(header::CONNECTION);",
  "isolated", "ingress::a_rejection_announces_connection_close"),
 ("lingering close lets the client read the 413", "connector/ingress/http/conn_io.rs",
  "            this.timer.as_mut().reset(Instant::now() + LINGER);\n        }\n",
  "            this.timer.as_mut().reset(Instant::now() + LINGER);\n        }\n        if this.timer.is_elapsed() || !this.timer.is_elapsed() {\n            return Poll::Ready(Ok(()));\n        }\n",
  "isolated", "ingress::an_early_413_is_read_by_a_client_still_uploading"),
 ("token endpoint back-off", "connector/ingress/auth/backoff.rs",
  "        if let Some(until) = record.blocked_until.filter(|until| now < *until) {",
  "        if let Some(until) = record.blocked_until.filter(|until| now < *until && false) {",
  "surface", "auth::guessing_client_secrets_makes_the_address_wait_and_a_success_resets_it"),
  ("start-up refuses a producer limit too small", "connector/wiring/config/mod.rs",
  "Ok(bytes) if bytes >= needed => Ok(()),", "Ok(_) => Ok(()),",
  "surface", "hardening::a_producer_limit_that_cannot_take_the_body_twice_stops_start_up_naming_the_keys"),
  ("a spooled record Kafka refuses as too large kept in quarantine", "connector/delivery/kafka_store.rs",
  "let Some(kept) = self.too_large.instead(spooled, &error) else {", "let Some(kept) = self.too_large.instead(spooled, &error).filter(|_| false) else {",
  "clusters", "faults::a_spooled_record_kafka_refuses_as_too_large_is_kept_raw_in_quarantine"),
  # Issue 24: durable in the customer's cluster.
  # Both undone, so the outage itself (not the start-up check) must catch it.
  ("created topics get min.insync.replicas", "connector/wiring/topology.rs",
  (".map(|spec| spec.max_message_bytes(max).min_insync_replicas(min_insync))",
   "if !config.topics.allow_single_replica_acks {"),
  (".map(|spec| { let _ = min_insync; spec.max_message_bytes(max) })",
   "if false {"),
  "clusters", "faults::two_of_three_nodes_killed_without_the_spool_is_retried_until_stored"),
  ("start-up refuses a replicated topic acking on one broker", "connector/wiring/topology.rs",
  "if !config.topics.allow_single_replica_acks {", "if false {",
  "clusters", "faults::a_replicated_topic_made_elsewhere_that_acks_on_one_broker_stops_start_up"),
  ("readiness does not ask the registry (probes)", "connector/ingress/http/health.rs",
  "    let store = state.store.health(CHECK_TIMEOUT).await;\n",
  "    let store = state.store.health(CHECK_TIMEOUT).await;\n    if let Some(r) = &state.registry { if !tokio::time::timeout(CHECK_TIMEOUT, r.reachable()).await.unwrap_or(false) { return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({\"status\": \"not_ready\", \"failed\": \"schema_registry\"}))); } }\n",
  "kafka", "operations::readiness_probes_make_no_registry_call"),
  ("readiness does not ask the registry (outage)", "connector/ingress/http/health.rs",
  "    let store = state.store.health(CHECK_TIMEOUT).await;\n",
  "    let store = state.store.health(CHECK_TIMEOUT).await;\n    if let Some(r) = &state.registry { if !tokio::time::timeout(CHECK_TIMEOUT, r.reachable()).await.unwrap_or(false) { return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({\"status\": \"not_ready\", \"failed\": \"schema_registry\"}))); } }\n",
  "kafka", "operations::a_registry_outage_after_start_keeps_the_pod_ready_and_webhooks_stored"),
  ("background registry check (metric, log, /healthz)", "connector/wiring/app.rs",
  "tokio::spawn(registry.watch(self.registry_check_interval, stop_rx))",
  "tokio::spawn(async move { let _ = (registry, stop_rx); })",
  "kafka", "operations::a_registry_outage_after_start_keeps_the_pod_ready_and_webhooks_stored"),
  ("start-up retries an unreachable registry", "connector/wiring/topology.rs",
  "Err(error) if registry_unreachable(&error) => {", "Err(error) if false && registry_unreachable(&error) => {",
  "kafka", "operations::a_registry_down_at_start_keeps_the_pod_unready_until_it_answers"),
  ("the listener answers while start-up waits", "connector/wiring/app.rs",
  "let starting = Starting::serve(config, &listener)?;",
  "let starting = Starting::serve(config, &TcpListener::bind(\"127.0.0.1:0\").await?)?;",
  "kafka", "operations::a_registry_down_at_start_keeps_the_pod_unready_until_it_answers"),
  # Issue 24 item 3: connections that fit the file limit.
  ("open-file soft limit raised to the hard limit", "connector/wiring/fd_limit.rs",
  "let soft = match rlimit::increase_nofile_limit(hard) {", "let soft = match Ok::<u64, std::io::Error>(was) {",
  "isolated", "ingress::under_a_1024_soft_limit_the_limit_is_raised_and_1100_slow_connections_leave_webhooks_room"),
  ("connection cap fitted to the open-file limit", "connector/wiring/fd_limit.rs",
  "    configured.min(room)\n", "    let _ = room;\n    configured\n",
  "isolated", "ingress::under_a_1024_hard_limit_the_cap_is_lowered_and_connections_over_it_are_closed_at_accept"),
  ("accept out of descriptors retried within milliseconds", "connector/ingress/http/accept.rs",
  "const ACCEPT_RETRY: Duration = Duration::from_millis(10);", "const ACCEPT_RETRY: Duration = Duration::from_secs(1);",
  "lib", "ingress::http::accept::tests::an_accept_out_of_descriptors_is_retried_within_milliseconds"),
  ("process metrics at /metrics", "connector/common/metrics.rs",
  "let process = PROCESS.get_or_init(metrics_process::Collector::default);",
  "let process = metrics_process::Collector::default();",
  "metrics_coverage", "every_metric_a_rule_or_panel_queries_is_exported_with_its_labels"),
  # Issue 24 item 4: docs that match the code (README, docs/, the image).
  ("README's broker snippet: one endpoint on /webhooks/riskos", "config.example.toml",
  'name = "riskos"                   #', 'name = "production"               #',
  "kafka", "cli::readme_run_against_a_broker_and_a_registry_runs_as_written"),
  ("the image's working directory holds the schemas", "Dockerfile",
  "WORKDIR /etc/riskos-connector\n", "",
  "deploy", "test_dockerfile.py::test_the_example_config_finds_the_schemas_the_image_ships"),
  ("runbook reaches /readyz by port-forward, not curl in the pod", "docs/runbook.md",
  "**Look at:** `kubectl port-forward pod/<pod> 8080:8080`, then on your machine",
  "**Look at:** `kubectl exec` or port-forward and",
  "deploy", "test_dockerfile.py::test_runbook_runs_nothing_in_the_pod_the_image_lacks"),
  ("the configuration reference names /openapi.json among the reserved paths", "docs/configuration.md",
  "`/metrics`, `/openapi.json` nor a token endpoint's path", "`/metrics` nor a token endpoint's path",
  "surface", "docs::the_reference_names_every_path_an_endpoint_may_not_take"),
  ("the ack ceiling explained by the strictest sender", "docs/configuration.md",
  "at most 8000: the answer must reach the sender before it gives up, after 10 s for request-token senders such as Alloy (RiskOS waits 30 s)",
  "at most 8000 (the vendor times out after ~10 s)",
  "surface", "docs::the_ack_timeout_ceiling_is_explained_by_the_strictest_sender"),
  ("the protection promise says what it leaves in clear", "docs/records.md",
  "personal value the schemas mark, and no body, reaches Kafka in clear. Not covered, stored in\n"
  "clear: top-level fields outside the envelope, kept as JSON text in `extra` (RiskOS may echo a\n"
  "`customer_metadata` object there), and fields a schema leaves unmarked (statuses, decisions,\n"
  "list names: [`docs/protection.md`](protection.md) lists them). What is covered:",
  "personal value reaches Kafka in clear:",
  "surface", "docs::the_protection_promise_says_what_it_leaves_in_clear"),
  ("partitioning by entity not called planned", "docs/protection.md",
  "and the partition (`riskos.partition_by`: `data.case_token`) is computed from the stored token, so one case stays on one partition under one hash key",
  "and partitioning by `data.case_token` (a planned feature) is computed from the stored token, so it stays consistent",
  "surface", "docs::no_doc_calls_partitioning_by_entity_planned"),
  ("reference rows for the new settings (items 1, 2)", "docs/configuration.md",
  "| `topics.min_insync_replicas` |", "| `topics.min_insync_replicas_undocumented` |",
  "surface", "docs::every_setting_has_a_row_in_the_configuration_reference"),
 # Issue 25 item 5
 ("kafka.librdkafka credentials redacted in `config check`", "connector/common/secret.rs",
  "self.redacted().serialize(serializer)", "self.0.serialize(serializer)",
  "surface", "cli::config_show_prints_no_kafka_or_registry_secret_set_in_the_file_or_the_env"),
 ("kafka.librdkafka credentials redacted in Debug", "connector/common/secret.rs",
  "self.redacted().fmt(f)", "self.0.fmt(f)",
  "lib", "wiring::config::tests::kafka_secrets_from_the_file_or_env_never_show_in_debug_or_check_output"),
 ("secret librdkafka properties matched in env spelling", "connector/common/secret.rs",
  "let name = name.to_ascii_lowercase().replace('_', \".\");", "let name = name.to_ascii_lowercase();",
  "lib", "common::secret::tests::kafka_credentials_are_redacted_by_name_and_kept_for_librdkafka"),
 ("any property naming a password or secret redacted", "connector/common/secret.rs",
  ".any(|word| name.contains(word))", ".any(|word| name == *word)",
  "lib", "common::secret::tests::kafka_credentials_are_redacted_by_name_and_kept_for_librdkafka"),
 ("client-config errors drop a secret's value", "connector/delivery/kafka/mod.rs",
  "if code == RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN || is_secret_property(&key) =>",
  "if false && is_secret_property(&key) =>",
  "lib", "delivery::kafka::tests::a_refused_property_shows_its_value_only_when_it_holds_no_secret"),
 ("erase --where-file read and combined with --where", "connector/main.rs",
  "conditions.extend(read.map_err(anyhow::Error::msg)?);", "let _ = read;",
  "bin", "tests::where_file_is_a_condition_of_its_own_and_combines_with_where"),
 ("erase --where-file from stdin or a file erases the same records", "connector/main.rs",
  "conditions.extend(read.map_err(anyhow::Error::msg)?);", "let _ = read;",
  "clusters", "erase::erase_and_compaction_remove_every_record_of_one_entity_and_nothing_else"),
  # Issue 25 item 7: the JWKS fetch (https only, no redirects, a bounded body, the last good keys kept, failures counted).
  ("http jwks_url refused at start-up", "connector/ingress/auth/oauth2.rs",
  "check_jwks_url(url, self.allow_insecure_jwks_url)?;", "check_jwks_url(url, true)?;",
  "surface", "auth::an_http_jwks_url_is_refused_at_start_up_without_the_test_switch"),
  ("JWKS client speaks https only", "connector/ingress/auth/jwks.rs",
  ".https_only(!allow_insecure)", ".https_only(false)",
  "lib", "ingress::auth::jwks::tests::an_http_url_is_not_fetched_without_the_switch"),
  ("JWKS redirect not followed", "connector/ingress/auth/jwks.rs",
  ".redirect(reqwest::redirect::Policy::none())", ".redirect(reqwest::redirect::Policy::default())",
  "surface", "auth::a_jwks_redirect_is_not_followed_and_the_failure_is_counted"),
  ("JWKS body bounded", "connector/ingress/auth/jwks.rs",
  "if body.len() + chunk.len() > MAX_JWKS_BYTES {", "if false {",
  "surface", "auth::an_oversized_jwks_is_refused_counted_and_the_previous_keys_keep_working"),
  ("JWKS refresh without usable keys keeps the last good set", "connector/ingress/auth/jwks.rs",
  "            if keys.is_empty() {\n                Err(JwksError::NoKeys)", "            if false {\n                Err(JwksError::NoKeys)",
  "surface", "auth::a_jwks_refresh_without_usable_keys_keeps_the_last_good_set_and_is_counted"),
  ("JWKS refresh failures counted", "connector/ingress/auth/jwks.rs",
  "                .increment(1);\n                tracing::warn!(url = %self.url, %error, \"JWKS refresh failed",
  "                .increment(0);\n                tracing::warn!(url = %self.url, %error, \"JWKS refresh failed",
  "surface", "auth::a_jwks_redirect_is_not_followed_and_the_failure_is_counted"),
  ("chart schema refuses an http jwksUrl", "helm/riskos-connector/values.schema.json",
  '"pattern": "^$|^https://"', '"pattern": "^$|^https?://"',
  "deploy", "test_helm_chart.py::test_values_schema_rejects_bad_values[bad_values33-jwksUrl]"),
  ("reference row for allow_insecure_jwks_url", "docs/configuration.md",
  "| `endpoints.auth.oauth2.allow_insecure_jwks_url` |", "| `endpoints.auth.oauth2.allow_insecure_jwks_url_undocumented` |",
  "surface", "docs::every_setting_has_a_row_in_the_configuration_reference"),
  # Issue 25 item 4
  ("a stranger's failures never refuse the right client credentials", "connector/ingress/http/token.rs",
  "        Ok(token) => {",
  "        Ok(_) if matches!(issuer.backoff().failed(client), Failure::Waiting(_)) => return Err(ApiError::TokenBackoff(1)), Ok(token) => {",
  "surface", "auth::a_strangers_wrong_secrets_never_lock_the_vendor_out"),
  ("Basic passwords too short to resist guessing refused at start-up", "connector/ingress/auth/basic.rs",
  "                    if password.len() < MIN_PASSWORD_BYTES {", "                    if false {",
  "surface", "auth::secrets_too_short_to_resist_guessing_stop_start_up_naming_their_key"),
  ("OAuth2 client secrets too short to resist guessing refused at start-up", "connector/ingress/auth/token_endpoint.rs",
  "    if secret.len() < MIN_CLIENT_SECRET_BYTES {", "    if false {",
  "surface", "auth::secrets_too_short_to_resist_guessing_stop_start_up_naming_their_key"),
  ("Standard Webhooks secrets of at least 24 bytes, as the spec asks", "connector/ingress/auth/standard_webhooks.rs",
  "pub const MIN_SECRET_BYTES: usize = 24;", "pub const MIN_SECRET_BYTES: usize = 16;",
  "surface", "auth::secrets_too_short_to_resist_guessing_stop_start_up_naming_their_key"),
  ("the chart refuses an Ingress without http.trustedProxies", "helm/riskos-connector/templates/ingress.yaml",
  "{{- if not .Values.http.trustedProxies }}", "{{- if false }}",
  "deploy", "test_helm_chart.py::test_an_ingress_without_trusted_proxies_is_refused_naming_the_value"),
  ("the chart's notes warn of trusted proxies reachable without the NetworkPolicy", "helm/riskos-connector/templates/NOTES.txt",
  "{{- if and .Values.ingress.enabled (not .Values.networkPolicy.enabled) }}", "{{- if false }}",
  "deploy", "test_helm_chart.py::test_the_notes_warn_when_trusted_proxies_are_reachable_without_the_network_policy"),
 # Issue 25 item 6
 ("Svix's svix-* header names read", "connector/ingress/auth/standard_webhooks.rs",
  "        (false, true) => read(&SVIX_HEADERS),\n", "        (false, true) => read(&STANDARD_HEADERS),\n",
  "surface", "signers::svixs_own_library_and_header_names_are_accepted_exactly_when_valid_and_never_mixed"),
 ("Svix's svix-* header names read (over HTTP)", "connector/ingress/auth/standard_webhooks.rs",
  "        (false, true) => read(&SVIX_HEADERS),\n", "        (false, true) => read(&STANDARD_HEADERS),\n",
  "surface", "endpoints::svix_header_names_are_accepted_keyed_by_svix_id_and_never_mixed"),
 ("the svix-id is the idempotency key", "connector/ingress/auth/standard_webhooks.rs",
  "    family_headers(headers).ok().map(|[id, _, _]| id)", "    header_text(headers, ID_HEADER).ok()",
  "surface", "endpoints::svix_header_names_are_accepted_keyed_by_svix_id_and_never_mixed"),
 ("the two header families never mixed", "connector/ingress/auth/standard_webhooks.rs",
  "            (Ok(standard), Ok(svix)) if standard == svix => Ok(standard),\n            _ => Err(Reason::MixedHeaderFamilies),",
  "            (_, Ok(svix)) => Ok(svix),\n            (standard, _) => standard,",
  "surface", "signers::svixs_own_library_and_header_names_are_accepted_exactly_when_valid_and_never_mixed"),
 ("the two header families never mixed (unit)", "connector/ingress/auth/standard_webhooks.rs",
  "            (Ok(standard), Ok(svix)) if standard == svix => Ok(standard),\n            _ => Err(Reason::MixedHeaderFamilies),",
  "            (_, Ok(svix)) => Ok(svix),\n            (standard, _) => standard,",
  "lib", "ingress::auth::standard_webhooks::tests::the_two_header_families_are_never_mixed"),
 ("a standard-webhooks endpoint documents the svix-* family", "connector/ingress/http/openapi.rs",
  '[("webhook", STANDARD_HEADERS), ("svix", SVIX_HEADERS)]', '[("webhook", STANDARD_HEADERS)]',
  "surface", "openapi::a_standard_webhooks_endpoint_documents_both_header_families_as_alternatives"),
  # Issue 25 item 3: body bytes before a signature, a share per address.
  ("one address holds at most a quarter of the body budget in hmac mode", "connector/ingress/http/guard.rs",
  ".then(|| super::body::source_share(share.body_bytes, http.max_body_bytes));",
  ".then(|| share.body_bytes);",
  "isolated", "ingress::forged_uploads_from_one_address_cannot_take_the_body_budget_from_signed_webhooks"),
  ("the per-address cap refuses what would go over it", "connector/ingress/http/body.rs",
  "if now + bytes > per_source.cap {", "if false && now + bytes > per_source.cap {",
  "lib", "ingress::http::body::tests::one_address_holds_at_most_its_cap_and_its_entry_goes_at_zero"),
  ("an address's entry goes when its bytes return to 0", "connector/ingress/http/body.rs",
  "                held.remove(&source);\n", "",
  "lib", "ingress::http::body::tests::one_address_holds_at_most_its_cap_and_its_entry_goes_at_zero"),
 # Issue 25 item 1: a key and nonce per value (HKDF-SHA256, random salt); old boxes still open.
 ("each value sealed under its own HKDF-derived key", "connector/pipeline/protect/keys.rs",
  "        let value_key = derive(&first.key, &sealed);\n",
  "        let value_key = { let _ = derive; aes_key(&[7u8; KEY_BYTES]) };\n",
  "lib", "pipeline::protect::keys::tests::each_value_is_sealed_under_its_own_hkdf_derived_key"),
 ("each value sealed under its own key: python and java derive it too", "connector/pipeline/protect/keys.rs",
  "        let value_key = derive(&first.key, &sealed);\n",
  "        let value_key = { let _ = derive; aes_key(&[7u8; KEY_BYTES]) };\n",
  "kafka", "consumers::python_and_java_open_values_of_every_format_and_report_another_key_under_an_old_id"),
 ("e1 boxes open bound to their unindexed path", "connector/pipeline/protect/keys.rs",
  "(&held.key.v1, nonce, path.unindexed())", "(&held.key.v1, nonce, path.indexed())",
  "lib", "pipeline::protect::keys::tests::values_of_the_first_formats_still_open_and_match"),
 ("e1 boxes still match in erase", "connector/pipeline/protect/keys.rs",
  "(&held.key.v1, nonce, path.unindexed())", "(&held.key.v1, nonce, path.indexed())",
  "lib", "tools::erase::tests::values_of_the_first_formats_still_match"),
 ("h1 tokens still match", "connector/pipeline/protect/keys.rs",
  "                    format!(\"{HASH_PREFIX_V1}{}.{mac}\", k.kid),\n", "",
  "lib", "tools::erase::tests::values_of_the_first_formats_still_match"),
 # Issue 25 item 2: a key id names one key; array items bound to their index.
 ("a value's fingerprint must be the held key's", "connector/pipeline/protect/keys.rs",
  "Some(fingerprint) if fingerprint != key.fingerprint =>", "Some(fingerprint) if false && fingerprint != key.fingerprint =>",
  "lib", "pipeline::protect::keys::tests::a_key_regenerated_under_an_old_id_is_reported_not_taken_for_it"),
 ("erase stops on values of another key under a held id", "connector/pipeline/protect/keys.rs",
  "Some(fingerprint) if fingerprint != key.fingerprint =>", "Some(fingerprint) if false && fingerprint != key.fingerprint =>",
  "lib", "tools::erase::tests::values_under_a_key_regenerated_under_an_old_id_stop_the_run_naming_both_fingerprints"),
 ("tail --reveal lists what stays closed", "connector/tools/tail.rs",
  "    if unopened.is_empty() {\n        return;", "    if true || unopened.is_empty() {\n        return;",
  "lib", "tools::tail::tests::reveal_opens_fields_and_bodies_and_lists_what_stays_closed"),
 ("array items bound to their index", "connector/pipeline/protect/mod.rs",
  "                    keys::push_index(path, index);\n", "                    { let _ = index; path.push_str(\"[]\"); }\n",
  "lib", "pipeline::protect::tests::items_of_an_array_are_bound_to_their_index_and_cannot_be_swapped"),
 ("keys generate picks a fresh id", "connector/main.rs",
  "kid.unwrap_or_else(keys::fresh_kid)", "kid.unwrap_or_else(|| \"k1\".into())",
  "surface", "cli::keys_generate_picks_a_fresh_id_each_time_and_prints_the_fingerprint_apart"),
 ("the chart generates a fresh id for each key", "helm/riskos-connector/templates/_helpers.tpl",
  'printf "k%s:%s" (randAlphaNum 8 | lower) (randBytes 32)', 'printf "k1:%s" (randBytes 32)',
  "deploy", "test_helm_chart.py::test_protection_keys_are_generated_mounted_and_rendered"),
 # Issue 26: CI's instruction budget trips on a pure path made dearer (here: every hashed
 # value's token computed twice).
 ("the instruction budget catches a dearer pure path", "connector/pipeline/protect/mod.rs",
  "            Policy::Hash => Json::String(self.keyring().hash(&canonical(value))),",
  "            Policy::Hash => Json::String({ let _ = self.keyring().hash(&canonical(value)); self.keyring().hash(&canonical(value)) }),",
  "budget", "bench/instruction-budget.json"),
 # Issue 26, logging at `info`: lines gathered and written a buffer at a time, span fields
 # written as JSON once, values escaped as written.
 ("log lines are gathered, not written one by one", "connector/common/telemetry/log_buffer.rs",
  "        if state.pending.len() >= FLUSH_AT || self.shared.stop.load(Ordering::Acquire) {",
  "        if true {",
  "lib", "common::telemetry::log_buffer::tests::lines_are_written_a_buffer_at_a_time_in_order"),
 ("control characters in log values are escaped", "connector/common/telemetry/json_line.rs",
  "                0x00..=0x1f => \"\",", "                0x00..=0x06 => \"\",",
  "lib", "common::telemetry::json_line::tests::lines_have_the_fields_and_values_of_tracing_subscribers_json_format"),
 ("span fields recorded later join the span's JSON object", "connector/common/telemetry/json_line.rs",
  "        let empty = !current.fields.ends_with('}') || current.fields == \"{}\";",
  "        let empty = true;",
  "lib", "common::telemetry::json_line::tests::lines_have_the_fields_and_values_of_tracing_subscribers_json_format"),
 # Issue 26, peak RSS: the duplicate cache's map has room for twice its cap, so a full cache
 # turning over cleans its tombstones in place instead of doubling the table.
 ("the duplicate cache's map never grows", "connector/delivery/dedup.rs",
  "stored: HashMap::with_capacity(presized.saturating_mul(MAP_ROOM)),",
  "stored: HashMap::with_capacity(presized),",
  "lib", "delivery::dedup::tests::a_full_cache_turning_over_never_grows_its_map"),
 # issue 27: connecting to customers' clusters
 ("a TLS alert after the handshake is a refusal", "connector/delivery/kafka/context.rs",
  'Some(RDKafkaErrorCode::BrokerTransportFailure) if reason.contains(" alert ") =>',
  'Some(RDKafkaErrorCode::BrokerTransportFailure) if false && reason.contains(" alert ") =>',
  "clusters", "secured::an_mtls_listener_refuses_a_connector_without_a_client_certificate"),
 ("a refusing cluster stops start-up even with a spool", "connector/wiring/topology.rs",
  "return Err(anyhow::Error::new(refused))",
  'tracing::warn!(error = %refused, "kafka refused")',
  "clusters", "secured::a_wrong_ca_is_refused_at_start_up_with_a_clear_message"),
 ("unreported min.insync.replicas is not 1", "connector/delivery/kafka/admin.rs",
  "(Some(replication_factor), Some(None)) => {\n            TopicDurability::Unreported { replication_factor }",
  "(Some(replication_factor), Some(None)) => {\n            TopicDurability::Replicated { replication_factor, min_insync_replicas: 1 }",
  "lib", "delivery::kafka::admin::tests::a_described_topic_without_min_insync_replicas_is_unreported_not_one"),
 ("aws-sigv4's trace lines (the session token) are capped at warn", "connector/common/telemetry/mod.rs",
  'const CAPPED_TARGETS: &[&str] = &["aws_sigv4"];', 'const CAPPED_TARGETS: &[&str] = &[];',
  "lib", "common::telemetry::tests::aws_sigv4_never_logs_below_warn_even_at_trace"),
 # Issue 28 item 3: the configuration reference held to the config structs, both ways.
 ("a reference row naming no setting", "docs/configuration.md",
  "| `log.level` | `info` |", "| `log.levels` | `info` |",
  "surface", "docs::every_row_of_the_configuration_reference_names_a_setting"),
 ("a reference default the code does not have", "docs/configuration.md",
  "| `http.max_json_depth` | `64` |", "| `http.max_json_depth` | `65` |",
  "surface", "docs::the_defaults_in_the_configuration_reference_are_the_code_defaults"),
 ("a setting whose field has no doc", "connector/ingress/http/config.rs",
  "    /// Deepest JSON nesting accepted (`{}` is 1); deeper bodies get 400 before they are\n    /// parsed. Default 64, at most 128.\n    pub max_json_depth",
  "    pub max_json_depth",
  "surface", "docs::every_setting_has_a_doc_comment_on_its_field"),
 ("config.example.toml naming no setting", "config.example.toml",
  "# handshake_timeout_ms = 10000", "# handshake_timeout = 10000",
  "surface", "docs::the_example_config_names_only_settings_that_exist"),
 # Issue 28 item 1: one owner for a body's fate; the spool stores records only.
 ("a segment an earlier version wrote with quarantine twins still reads", "connector/delivery/spool.rs",
  "            body = &body[1..];\n            parse(take(&mut body)?)?;\n", "            return None;\n",
  "lib", "delivery::spool::tests::a_segment_written_with_quarantine_twins_still_reads_record_by_record"),
 ("an encrypted body refused from the spool is sealed for the quarantine topic", "connector/pipeline/fate.rs",
  "                Cow::Owned(\n                    keys.decrypt(raw, &route.topic, key, &path)",
  "                let _ = Cow::<[u8]>::Borrowed(raw.as_bytes());\n                Cow::Owned(\n                    keys.decrypt(raw, &route.topic, key, &path).map(|_| raw.as_bytes().to_vec())",
  "lib", "pipeline::fate::tests::a_refusal_at_once_and_one_met_by_the_forwarder_quarantine_alike"),
 # Issue 28 review: the deploy tests run the connector run.sh names, not target/debug's.
 ("the deploy tests run the connector handed to run.sh", "tests/deploy/conftest.py",
  'Path(os.environ.get("RISKOS_CONNECTOR_BIN", REPO / "target" / "debug" / "riskos-connector"))',
  'Path(REPO / "target" / "debug" / "riskos-connector")',
  "deploy", "test_compose.py::test_the_binary_tests_run_the_connector_run_sh_hands_them"),
]
only = sys.argv[1:]
weak = 0
for i, (name, path, old, new, binary, test) in enumerate(M):
    if only and str(i) not in only: continue
    src = open(path).read()
    # An entry may undo several edits of one file at once: tuples of olds and news.
    olds, news = (old, new) if isinstance(old, tuple) else ((old,), (new,))
    counts = [src.count(o) for o in olds]
    if counts != [1] * len(olds):
        print(f"[{i}] {name}: pattern found {counts} times in {path}", flush=True)
        weak += 1
        continue
    if name.startswith("metrics upkeep"):
        # Both upkeeps: the thread and the one every 1024 requests.
        src2 = src.replace(old, new).replace(
            "    if n.is_multiple_of(UPKEEP_EVERY_REQUESTS) {",
            "    if n.is_multiple_of(UPKEEP_EVERY_REQUESTS) && false {",
        )
    else:
        src2 = src
        for o, n in zip(olds, news):
            src2 = src2.replace(o, n)
    open(path, "w").write(src2)
    try:
        t = time.time()
        if binary == "budget":  # the pure path's instruction budget (bench/instruction-budget.json)
            build = subprocess.run(["cargo", "build", "--release", "--locked", "--manifest-path",
                                    "bench/Cargo.toml"], capture_output=True, text=True, timeout=1800)
            r = subprocess.run(["bench/target/release/riskos-bench", "instructions", "--budget", test],
                               capture_output=True, text=True, timeout=900)
            out = build.stdout + build.stderr + r.stdout + r.stderr
            over = len(re.findall(r"OVER BUDGET", out))
            # Caught only when a fixture is over its budget; a check that fails for another
            # reason (no valgrind, a fixture not counted) did not run.
            checked = build.returncode == 0 and (over > 0) == (r.returncode != 0)
            ran = re.match(r"(\d+) (\d+)", f"0 {1 if over else 0}") if checked else None
            if over:
                out += f"\npanicked at budget\n{over} fixture(s) over budget"
        elif binary == "deploy":  # a pytest test of tests/deploy: FILE::TEST
            r = subprocess.run([os.path.join(ROOT, ".venv-deploy/bin/python"), "-m", "pytest",
                                "-p", "no:cacheprovider", "-q", f"tests/deploy/{test}"],
                               capture_output=True, text=True, timeout=900,
                               env={**env, "PYTHONDONTWRITEBYTECODE": "1"})
            out = r.stdout + r.stderr
            counts = dict((k, int(v)) for v, k in re.findall(r"(\d+) (passed|failed)", out))
            ran = re.match(r"(\d+) (\d+)", f"{counts.get('passed', 0)} {counts.get('failed', 0)}") if counts else None
        else:
            # "lib": a unit test of the library; "bin": one of the binary's (connector/main.rs)
            target = {"lib": ["--lib"], "bin": ["--bin", "riskos-connector"]}.get(binary, ["--test", binary])
            r = subprocess.run(["cargo", "test", "--locked", *target, "--", "--exact", test],
                               capture_output=True, text=True, env=env, timeout=900)
            out = r.stdout + r.stderr
            ran = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed", out)
        if "error[" in out or not ran:
            verdict = "DID NOT BUILD/RUN"
        elif int(ran.group(2)) == 1:
            verdict = "FAILS (good)"
        else:
            verdict = "STILL PASSES (bad)"
        msg = ""
        m = re.search(r"panicked at [^\n]*\n([^\n]*)", out) or re.search(r"^E +(.*)$", out, re.M)
        if m: msg = m.group(1)[:200]
        print(f"[{i}] {name}: {verdict} in {time.time()-t:.0f}s — {binary}::{test} — {msg}", flush=True)
        if not verdict.startswith("FAILS"):
            weak += 1
        if verdict.startswith("DID NOT"):
            print("\n".join(l for l in out.splitlines() if "error" in l)[:1500])
    finally:
        open(path, "w").write(src)
subprocess.run(["git", "status", "--short"])
sys.exit(1 if weak else 0)
