# riskos-connector container image.
#
#   docker build -t riskos-connector:dev .
#   cp config.example.toml config.toml     # then set the brokers, registry, secrets and keys
#   docker run --rm -p 8080:8080 -v $PWD/config.toml:/etc/riskos-connector/config.toml:ro riskos-connector:dev
#
# The working directory is /etc/riskos-connector, where the schemas are, so the example's
# relative `schemas.dir = "schemas"` finds them (an absolute path works too).
#
# Two stages: a full Rust toolchain builds the binary (librdkafka is compiled from source by the
# `rdkafka` crate), and a slim Debian image runs it as an unprivileged user with only the
# binary and the Avro schemas copied in.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder

# librdkafka's build (rdkafka-sys, features `ssl`, `cmake-build`, `curl-static`, `zstd`) needs
# a C/C++ toolchain, make, cmake, perl, pkg-config and the OpenSSL and zlib headers; libcurl
# (for OIDC token fetch) and zstd are built from their crates' sources and linked statically.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        gcc g++ make cmake perl pkg-config libssl-dev zlib1g-dev python3 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# 1. Dependencies only: the manifest and lock file with stub sources. This layer (the slow
#    librdkafka build included) is reused as long as Cargo.toml and Cargo.lock do not change.
COPY Cargo.toml Cargo.lock ./
# The manifest of the tests' support crate (a workspace member and a path dev-dependency): Cargo
# loads it to resolve the lock file, though a release build never compiles it.
COPY tests/support/Cargo.toml tests/support/Cargo.toml
RUN mkdir -p connector \
 && echo 'fn main() {}' > connector/main.rs \
 && : > connector/lib.rs \
 && cargo build --release --locked \
 && rm -rf connector \
           target/release/riskos-connector* \
           target/release/deps/riskos_connector-* \
           target/release/deps/libriskos_connector-* \
           target/release/.fingerprint/riskos-connector-*

# 2. The crate itself.
COPY connector ./connector
COPY schemas ./schemas
RUN touch connector/lib.rs connector/main.rs \
 && cargo build --release --locked \
 && strip target/release/riskos-connector \
 && ./target/release/riskos-connector --version

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime

# Shared libraries the binary links (OpenSSL 3, zlib) and the CA bundle for TLS to Kafka and
# the Schema Registry. Nothing else: no shell tools are needed by the service.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 riskos \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin riskos

COPY --from=builder /build/target/release/riskos-connector /usr/local/bin/riskos-connector
COPY schemas/ /etc/riskos-connector/schemas/
# Relative paths in the config resolve here: `schemas.dir = "schemas"` (the default and the
# example's) is the folder above.
WORKDIR /etc/riskos-connector

LABEL org.opencontainers.image.title="riskos-connector" \
      org.opencontainers.image.description="RiskOS webhooks in, Avro records on Kafka out" \
      org.opencontainers.image.licenses="Apache-2.0"

# Numeric uid:gid so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
EXPOSE 8080

# `--config` may also come from RISKOS_CONFIG; RISKOS_<SECTION>__<KEY> variables override
# single keys. The image sets none of them.
ENTRYPOINT ["/usr/local/bin/riskos-connector"]
CMD ["serve", "--config", "/etc/riskos-connector/config.toml"]
