{{/*
Names and labels.
*/}}
{{- define "riskos-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "riskos-connector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "riskos-connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "riskos-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "riskos-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "riskos-connector.labels" -}}
helm.sh/chart: {{ include "riskos-connector.chart" . }}
{{ include "riskos-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: webhook-receiver
{{- end }}

{{- define "riskos-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "riskos-connector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "riskos-connector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Fixed paths inside the container.
*/}}
{{- define "riskos-connector.configDir" -}}/etc/riskos-connector{{- end }}
{{- define "riskos-connector.secretsDir" -}}/etc/riskos-connector/secrets{{- end }}
{{- define "riskos-connector.tlsDir" -}}/etc/riskos-connector/tls{{- end }}
{{- define "riskos-connector.schemasDir" -}}/etc/riskos-connector/schemas{{- end }}

{{/*
The workload kind: a StatefulSet (one PVC per pod) when the durable spool is on.
*/}}
{{- define "riskos-connector.workloadKind" -}}
{{- if .Values.spool.enabled }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{/*
terminationGracePeriodSeconds = preStop sleep + ceil(shutdown.graceMs / 1000) + margin.
*/}}
{{- define "riskos-connector.terminationGracePeriodSeconds" -}}
{{- $graceSeconds := div (add (int64 .Values.shutdown.graceMs) 999) 1000 }}
{{- add (int64 .Values.shutdown.preStopSleepSeconds) $graceSeconds (int64 .Values.shutdown.terminationMarginSeconds) }}
{{- end }}

{{/*
Secret handling.
*/}}
{{- define "riskos-connector.secretName" -}}
{{- default (include "riskos-connector.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Bearer tokens: the given ones, else the token kept in the release's Secret, else a new one. */}}
{{- define "riskos-connector.bearerTokens" -}}
{{- if .Values.secrets.bearerTokens }}
{{- join "\n" .Values.secrets.bearerTokens }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "riskos-connector.fullname" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "auth_bearer_tokens") }}
{{- index $existing.data "auth_bearer_tokens" | b64dec }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Signing secrets of the built-in OAuth2 token endpoint: the values given, else the ones already in
the release's Secret, else one random secret generated on install. Every replica must share them.
*/}}
{{- define "riskos-connector.oauth2SigningSecrets" -}}
{{- if .Values.secrets.oauth2SigningSecrets }}
{{- join "\n" .Values.secrets.oauth2SigningSecrets }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "riskos-connector.fullname" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "auth_oauth2_signing") }}
{{- index $existing.data "auth_oauth2_signing" | b64dec }}
{{- else }}
{{- randAlphaNum 64 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Secret's data (key: plain value) as YAML, only the keys the configuration needs. Fails with
a message naming the value when a needed credential is missing.
*/}}
{{- define "riskos-connector.secretData" -}}
{{- $s := .Values.secrets }}
{{- $mode := .Values.auth.mode }}
{{- if .Values.schemaRegistry.username }}
{{- if not $s.schemaRegistryPassword }}
{{- fail "schemaRegistry.username is set: secrets.schemaRegistryPassword (or secrets.existingSecret) is required" }}
{{- end }}
schema_registry_password: {{ $s.schemaRegistryPassword | toJson }}
{{- end }}
{{- if .Values.kafka.saslPasswordFromSecret }}
{{- if not $s.kafkaSaslPassword }}
{{- fail "kafka.saslPasswordFromSecret is true: secrets.kafkaSaslPassword (or secrets.existingSecret) is required" }}
{{- end }}
kafka_sasl_password: {{ $s.kafkaSaslPassword | toJson }}
{{- end }}
{{- if eq $mode "basic" }}
{{- if not $s.basicCredentials }}
{{- fail "auth.mode=basic: secrets.basicCredentials (\"user:password\" entries) or secrets.existingSecret is required" }}
{{- end }}
{{- range $s.basicCredentials }}
{{- if not (regexMatch "^[^:]+:.+$" .) }}
{{- fail "secrets.basicCredentials entries must look like \"user:password\"" }}
{{- end }}
{{- end }}
auth_basic_credentials: {{ join "\n" $s.basicCredentials | toJson }}
{{- else if eq $mode "bearer" }}
auth_bearer_tokens: {{ include "riskos-connector.bearerTokens" . | toJson }}
{{- else if eq $mode "oauth2" }}
{{- if .Values.auth.oauth2.tokenEndpoint.enabled }}
{{- if not $s.oauth2Clients }}
{{- fail "auth.oauth2.tokenEndpoint.enabled: secrets.oauth2Clients or secrets.existingSecret is required" }}
{{- end }}
{{- $clients := list }}
{{- range $s.oauth2Clients }}
{{- $clients = append $clients (printf "%s:%s" .clientId .clientSecret) }}
{{- end }}
auth_oauth2_clients: {{ join "\n" $clients | toJson }}
auth_oauth2_signing: {{ include "riskos-connector.oauth2SigningSecrets" . | toJson }}
{{- end }}
{{- else if eq $mode "hmac" }}
{{- if not $s.hmacSecrets }}
{{- fail "auth.mode=hmac: secrets.hmacSecrets or secrets.existingSecret is required" }}
{{- end }}
auth_hmac_secrets: {{ join "\n" $s.hmacSecrets | toJson }}
{{- end }}
{{- end }}

{{/* "true" when a Secret is mounted (an existing one, or one the chart creates). */}}
{{- define "riskos-connector.hasSecret" -}}
{{- if .Values.secrets.existingSecret }}true
{{- else if include "riskos-connector.secretData" . | trim }}true
{{- end }}
{{- end }}

{{/*
config.toml. Strings and lists are written with toJson: a JSON string or array of strings is a
valid TOML value. Optional keys are left out when unset so the connector's defaults apply.
*/}}
{{- define "riskos-connector.configToml" -}}
{{- $secrets := include "riskos-connector.secretsDir" . }}
{{- $forbidden := list "sasl.password" "ssl.key.password" "ssl.keystore.password" "ssl.key.pem" "sasl.oauthbearer.client.secret" "sasl.oauthbearer.config" }}
# Rendered by the riskos-connector Helm chart. Credentials are not in this file: the *_file
# keys point at the Secret mounted under {{ $secrets }}/.
# Every key can be overridden with the env var RISKOS_<SECTION>__<KEY>.

[http]
listen = {{ printf "0.0.0.0:%d" (int64 .Values.http.port) | toJson }}
path = {{ .Values.http.path | toJson }}
max_body_bytes = {{ int64 .Values.http.maxBodyBytes }}
{{- with .Values.http.allowCidrs }}
allow_cidrs = {{ toJson . }}
{{- end }}
{{- with .Values.http.trustedProxies }}
trusted_proxies = {{ toJson . }}
{{- end }}
{{- if not (kindIs "invalid" .Values.http.rateLimitPerIp) }}
rate_limit_per_ip = {{ int64 .Values.http.rateLimitPerIp }}
{{- end }}
{{- if not (kindIs "invalid" .Values.http.maxInFlight) }}
max_in_flight = {{ int64 .Values.http.maxInFlight }}
{{- end }}
{{- if not (kindIs "invalid" .Values.http.maxConnections) }}
max_connections = {{ int64 .Values.http.maxConnections }}
{{- end }}
{{- if not (kindIs "invalid" .Values.http.headerReadTimeoutMs) }}
header_read_timeout_ms = {{ int64 .Values.http.headerReadTimeoutMs }}
{{- end }}
{{- if not (kindIs "invalid" .Values.http.idleTimeoutMs) }}
idle_timeout_ms = {{ int64 .Values.http.idleTimeoutMs }}
{{- end }}
{{- if .Values.http.tls.enabled }}

[http.tls]
cert_file = {{ printf "%s/tls.crt" (include "riskos-connector.tlsDir" .) | toJson }}
key_file = {{ printf "%s/tls.key" (include "riskos-connector.tlsDir" .) | toJson }}
{{- end }}

[kafka]
bootstrap_servers = {{ required "kafka.bootstrapServers is required" .Values.kafka.bootstrapServers | toJson }}
{{- with .Values.kafka.librdkafka }}

[kafka.librdkafka]
{{- range $key, $value := . }}
{{- if has ($key | lower | replace "_" ".") $forbidden }}
{{- fail (printf "kafka.librdkafka.%s is a secret: use kafka.saslPasswordFromSecret/secrets or extraEnv with a secretKeyRef, not the ConfigMap" $key) }}
{{- end }}
{{ toJson $key }} = {{ toString $value | toJson }}
{{- end }}
{{- end }}

{{- if .Values.schemaRegistry.url }}

[schema_registry]
url = {{ .Values.schemaRegistry.url | toJson }}
timeout_ms = {{ int64 .Values.schemaRegistry.timeoutMs }}
{{- with .Values.schemaRegistry.compatibility }}
compatibility = {{ toJson . }}
{{- end }}
{{- if .Values.schemaRegistry.username }}
username = {{ .Values.schemaRegistry.username | toJson }}
password_file = {{ printf "%s/schema_registry_password" $secrets | toJson }}
{{- end }}
{{- else if ne (toString .Values.schemas.encoding) "single-object" }}
{{- fail "schemaRegistry.url is required (or set schemas.encoding: single-object to run without a registry)" }}
{{- end }}

[schemas]
dir = {{ include "riskos-connector.schemasDir" . | toJson }}
{{- with .Values.schemas.encoding }}
encoding = {{ toJson . }}
{{- end }}

[topics]
prefix = {{ .Values.topics.prefix | toJson }}
partitions = {{ int64 .Values.topics.partitions }}
replication_factor = {{ int64 .Values.topics.replicationFactor }}
create = {{ .Values.topics.create }}
{{- with .Values.topics.quarantine }}
quarantine = {{ toJson . }}
{{- end }}

[delivery]
ack_timeout_ms = {{ int64 .Values.delivery.ackTimeoutMs }}
{{- if .Values.spool.enabled }}

[delivery.spool]
dir = {{ .Values.spool.dir | toJson }}
max_bytes = {{ int64 .Values.spool.maxBytes }}
{{- end }}

[shutdown]
grace_ms = {{ int64 .Values.shutdown.graceMs }}

[auth]
mode = {{ .Values.auth.mode | toJson }}
{{- if eq .Values.auth.mode "basic" }}

[auth.basic]
credentials_file = {{ printf "%s/auth_basic_credentials" $secrets | toJson }}
{{- else if eq .Values.auth.mode "bearer" }}

[auth.bearer]
tokens_file = {{ printf "%s/auth_bearer_tokens" $secrets | toJson }}
{{- else if eq .Values.auth.mode "oauth2" }}
{{- $o := .Values.auth.oauth2 }}
{{- if not (or $o.jwksUrl $o.tokenEndpoint.enabled) }}
{{- fail "auth.mode=oauth2 needs auth.oauth2.jwksUrl or auth.oauth2.tokenEndpoint.enabled" }}
{{- end }}

[auth.oauth2]
{{- with $o.jwksUrl }}
jwks_url = {{ toJson . }}
{{- end }}
{{- with $o.issuer }}
issuer = {{ toJson . }}
{{- end }}
{{- with $o.audience }}
audience = {{ toJson . }}
{{- end }}
{{- if $o.tokenEndpoint.enabled }}

[auth.oauth2.token_endpoint]
clients_file = {{ printf "%s/auth_oauth2_clients" $secrets | toJson }}
signing_secrets_file = {{ printf "%s/auth_oauth2_signing" $secrets | toJson }}
ttl_secs = {{ int64 $o.tokenEndpoint.ttlSecs }}
{{- end }}
{{- else if eq .Values.auth.mode "hmac" }}
{{- $h := .Values.auth.hmac }}

[auth.hmac]
secrets_file = {{ printf "%s/auth_hmac_secrets" $secrets | toJson }}
{{- with $h.header }}
header = {{ toJson . }}
{{- end }}
{{- with $h.timestampHeader }}
timestamp_header = {{ toJson . }}
{{- end }}
tolerance_secs = {{ int64 $h.toleranceSecs }}
{{- end }}

[log]
format = {{ .Values.log.format | toJson }}
level = {{ .Values.log.level | toJson }}
{{- with .Values.tracing.otlpEndpoint }}

[tracing]
otlp_endpoint = {{ toJson . }}
service_name = {{ $.Values.tracing.serviceName | toJson }}
{{- end }}
{{- end }}

{{/* http or https, for probes and scraping. */}}
{{- define "riskos-connector.scheme" -}}
{{- if .Values.http.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}
