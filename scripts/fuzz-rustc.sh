#!/usr/bin/env bash
# RUSTC_WRAPPER of scripts/fuzz.sh's build (not for use on its own).
#
# cargo-afl hands every crate the same RUSTFLAGS: AFL++'s coverage instrumentation
# (sancov-module, trace-pc-guard, trace-compares) at -C opt-level=3 with -C codegen-units=1 (one
# LLVM module per crate: no parallel code generation). The fuzz targets run the pure path only
# (the depth scan, pipeline::prepare without protection, apache-avro, serde_json); the crates
# below never run in them (HTTP client and server, TLS, aws-lc, telemetry, configuration
# loading, the CLI; Kafka and the cloud SDK are not built at all: fuzz/Cargo.toml leaves out
# the library's feature `kafka`). Instrumenting them adds no coverage feedback, yet it was the
# larger part of the fuzz build's CPU. For these crates only, this wrapper drops cargo-afl's instrumentation, opt-level
# and codegen-units flags and builds them at -C opt-level=0 without debug info; every other crate
# (ours, the fuzz crate, serde, serde_json, apache-avro and the rest of the pure path) is built
# exactly as cargo-afl says. A crate that starts to matter for the pure path comes off the list.
set -euo pipefail

NOT_FUZZED=" tokio tokio_util tokio_stream tokio_rustls mio socket2
  hyper hyper_util hyper_rustls h2 reqwest quinn quinn_proto quinn_udp
  rustls rustls_webpki rustls_native_certs rustls_platform_verifier webpki_root_certs ring
  aws_lc_rs aws_lc_sys
  opentelemetry opentelemetry_http opentelemetry_otlp opentelemetry_proto opentelemetry_sdk
  tracing_opentelemetry tracing_subscriber prost tonic tonic_prost
  axum axum_core tower tower_http
  regex regex_automata regex_syntax aho_corasick
  clap clap_builder figment toml toml_edit toml_datetime winnow
  jsonwebtoken simple_asn1 pem schema_registry_converter
  metrics_exporter_prometheus metrics_process metrics_util procfs procfs_core sketches_ddsketch
  governor quanta dashmap evmap left_right
  url idna icu_collections icu_locale_core icu_normalizer icu_normalizer_data icu_properties
  icu_properties_data icu_provider zerovec zerotrie tinystr yoke encoding_rs "

rustc=$1
shift
crate="" prev=""
for arg in "$@"; do
  if [[ $prev == --crate-name ]]; then
    crate=$arg
    break
  fi
  prev=$arg
done
NOT_FUZZED=" $(echo $NOT_FUZZED) " # one space between names, and at both ends
if [[ -z $crate || $NOT_FUZZED != *" $crate "* ]]; then
  exec "$rustc" "$@"
fi

args=()
while (($#)); do
  if [[ $1 == -C && $# -ge 2 ]]; then
    case $2 in
      passes=sancov* | llvm-args=-sanitizer-coverage* | opt-level=* | codegen-units=* | debuginfo=*)
        shift 2
        continue
        ;;
    esac
  fi
  args+=("$1")
  shift
done
exec "$rustc" "${args[@]}" -C opt-level=0 -C debuginfo=0
