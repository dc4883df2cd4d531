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
{{- define "riskos-connector.protectionDir" -}}/etc/riskos-connector/protection{{- end }}
{{- define "riskos-connector.kafkaTlsDir" -}}/etc/riskos-connector/kafka-tls{{- end }}
{{- define "riskos-connector.registryTlsDir" -}}/etc/riskos-connector/schema-registry-tls{{- end }}

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
Secret handling. The connector-wide credentials (schema registry, Kafka SASL) come from
secrets.existingSecret or the chart's Secret; each endpoint's from its own existingSecret (keys
named like the files: bearer_tokens, ...) or the chart's Secret (keys "<endpoint>.<file>").
Everything is projected into one volume at secretsDir: connector-wide files at its top, an
endpoint's files under <endpoint>/.
*/}}
{{- define "riskos-connector.secretName" -}}
{{- default (include "riskos-connector.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/*
The endpoints as JSON {"endpoints": [...]}, defaults filled in (a values list replaces the
default list whole, so an item may lack any optional key) and checked: names and paths unique,
paths not the connector's own, the mode's credentials present. Each endpoint carries:
  files:       [{file, secret, key, path, value, generate}] the credential files it needs,
               mounted at <secretsDir>/<path> from key `key` of Secret `secret`; `value` (the
               file's content) only for the chart's Secret, `generate` (a length) when a
               missing value is generated once and kept;
  filePaths:   {file: absolute path} for config.toml;
  headers:     [{name, file}] its required headers;
  routes:      the paths the Ingress routes to it (its path, its token endpoint's);
  protectFields, raw: only when set (else the connector's defaults: true, "encrypt");
  cloudevents: only when set (rendered only when true: the connector's default is off).
*/}}
{{- define "riskos-connector.endpoints" -}}
{{- $fullname := include "riskos-connector.fullname" . }}
{{- $secretsDir := include "riskos-connector.secretsDir" . }}
{{- $reserved := list "/healthz" "/readyz" "/metrics" "/openapi.json" }}
{{- $names := dict }}
{{- $paths := dict }}
{{- $out := list }}
{{- if not .Values.endpoints }}
{{- fail "endpoints: at least one endpoint is required" }}
{{- end }}
{{- range $i, $ep := .Values.endpoints }}
{{- if not (kindIs "map" $ep) }}
{{- fail (printf "endpoints[%d] must be a map (name, path, auth, ...)" $i) }}
{{- end }}
{{- $name := toString (dig "name" "" $ep) }}
{{- if not (regexMatch "^[a-z0-9][a-z0-9_-]{0,62}$" $name) }}
{{- fail (printf "endpoints[%d].name %q: lower-case letters, digits, - and _, starting with a letter or digit, at most 63 characters" $i $name) }}
{{- end }}
{{- $section := printf "endpoints[%s]" $name }}
{{- if has $name (include "riskos-connector.connectorSecretFiles" $ | fromJsonArray) }}
{{- fail (printf "endpoints[%d].name %q is the name of a connector-wide credential file in /etc/riskos-connector/secrets/: choose another" $i $name) }}
{{- end }}
{{- if hasKey $names $name }}
{{- fail (printf "endpoints: the name %q is used by endpoints[%d] and endpoints[%d]; names must be unique" $name (get $names $name) $i) }}
{{- end }}
{{- $_ := set $names $name $i }}
{{- $auth := dig "auth" (dict) $ep }}
{{- $mode := toString (dig "mode" "" $auth) }}
{{- if not $mode }}
{{- fail (printf "%s.auth.mode is required (basic, bearer, oauth2, hmac, standard-webhooks or none)" $section) }}
{{- end }}
{{- /* Every path this endpoint serves: its own and its token endpoint's. */}}
{{- $routes := list (toString (dig "path" "" $ep)) }}
{{- $o := dig "oauth2" (dict) $auth }}
{{- $te := dig "tokenEndpoint" (dict) $o }}
{{- $tokenEndpoint := and (eq $mode "oauth2") (dig "enabled" false $te) }}
{{- if $tokenEndpoint }}
{{- $routes = append $routes (default "/oauth2/token" (dig "path" "" $te)) }}
{{- end }}
{{- range $k, $route := $routes }}
{{- $key := ternary (printf "%s.path" $section) (printf "%s.auth.oauth2.tokenEndpoint.path" $section) (eq $k 0) }}
{{- if not (hasPrefix "/" $route) }}
{{- fail (printf "%s %q must start with /" $key $route) }}
{{- end }}
{{- if has $route $reserved }}
{{- fail (printf "%s %q is served by the connector itself (/healthz, /readyz, /metrics, /openapi.json)" $key $route) }}
{{- end }}
{{- if hasKey $paths $route }}
{{- fail (printf "%s %q is already taken by %s; paths must be unique across endpoints and token endpoints" $key $route (get $paths $route)) }}
{{- end }}
{{- $_ := set $paths $route $key }}
{{- end }}
{{- $existing := toString (dig "existingSecret" "" $ep) }}
{{- $s := dig "secrets" (dict) $ep }}
{{- $headersIn := dig "requiredHeaders" (list) $ep }}
{{- if $existing }}
{{- range $k, $v := $s }}
{{- if $v }}
{{- fail (printf "%s.existingSecret is set: remove %s.secrets.%s (the credentials are read from the existing Secret)" $section $section $k) }}
{{- end }}
{{- end }}
{{- range $k, $h := $headersIn }}
{{- if dig "values" (list) $h }}
{{- fail (printf "%s.existingSecret is set: remove %s.requiredHeaders[%d].values (the Secret's key required_header_%d holds them)" $section $section $k $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* The credential files: [file, inline value or "" (existing Secret or generated), generated length]. */}}
{{- $needed := list }}
{{- if eq $mode "basic" }}
{{- $creds := dig "basicCredentials" (list) $s }}
{{- if and (not $existing) (not $creds) }}
{{- fail (printf "%s.auth.mode=basic: %s.secrets.basicCredentials (\"user:password\" entries) or %s.existingSecret is required" $section $section $section) }}
{{- end }}
{{- range $creds }}
{{- if not (regexMatch "^[^:]+:.+$" (toString .)) }}
{{- fail (printf "%s.secrets.basicCredentials entries must look like \"user:password\"" $section) }}
{{- end }}
{{- end }}
{{- $needed = append $needed (list "basic_credentials" (join "\n" $creds) 0) }}
{{- else if eq $mode "bearer" }}
{{- $needed = append $needed (list "bearer_tokens" (join "\n" (dig "bearerTokens" (list) $s)) 48) }}
{{- else if eq $mode "oauth2" }}
{{- if not (or (dig "jwksUrl" "" $o) $tokenEndpoint) }}
{{- fail (printf "%s.auth.mode=oauth2 needs %s.auth.oauth2.jwksUrl or %s.auth.oauth2.tokenEndpoint.enabled" $section $section $section) }}
{{- end }}
{{- if $tokenEndpoint }}
{{- $clients := list }}
{{- range dig "oauth2Clients" (list) $s }}
{{- $clients = append $clients (printf "%s:%s" .clientId .clientSecret) }}
{{- end }}
{{- if and (not $existing) (not $clients) }}
{{- fail (printf "%s.auth.oauth2.tokenEndpoint.enabled: %s.secrets.oauth2Clients or %s.existingSecret is required" $section $section $section) }}
{{- end }}
{{- $needed = append $needed (list "oauth2_clients" (join "\n" $clients) 0) }}
{{- $needed = append $needed (list "oauth2_signing" (join "\n" (dig "oauth2SigningSecrets" (list) $s)) 64) }}
{{- end }}
{{- else if eq $mode "hmac" }}
{{- $secrets := dig "hmacSecrets" (list) $s }}
{{- if and (not $existing) (not $secrets) }}
{{- fail (printf "%s.auth.mode=hmac: %s.secrets.hmacSecrets or %s.existingSecret is required" $section $section $section) }}
{{- end }}
{{- $needed = append $needed (list "hmac_secrets" (join "\n" $secrets) 0) }}
{{- else if eq $mode "standard-webhooks" }}
{{- $signatures := dig "standardWebhooks" "signatures" "symmetric" $auth }}
{{- if has $signatures (list "symmetric" "both") }}
{{- $secrets := dig "standardWebhooksSecrets" (list) $s }}
{{- if and (not $existing) (not $secrets) }}
{{- fail (printf "%s.auth.mode=standard-webhooks (%s signatures): %s.secrets.standardWebhooksSecrets (whsec_...) or %s.existingSecret is required" $section $signatures $section $section) }}
{{- end }}
{{- $needed = append $needed (list "standard_webhooks_secrets" (join "\n" $secrets) 0) }}
{{- end }}
{{- if has $signatures (list "asymmetric" "both") }}
{{- $keys := dig "standardWebhooksPublicKeys" (list) $s }}
{{- if and (not $existing) (not $keys) }}
{{- fail (printf "%s.auth.mode=standard-webhooks (%s signatures): %s.secrets.standardWebhooksPublicKeys (whpk_...) or %s.existingSecret is required" $section $signatures $section $section) }}
{{- end }}
{{- $needed = append $needed (list "standard_webhooks_public_keys" (join "\n" $keys) 0) }}
{{- end }}
{{- else if ne $mode "none" }}
{{- fail (printf "%s.auth.mode %q: choose basic, bearer, oauth2, hmac, standard-webhooks or none" $section $mode) }}
{{- end }}
{{- $headers := list }}
{{- range $k, $h := $headersIn }}
{{- $file := printf "required_header_%d" $k }}
{{- $hname := toString (dig "name" "" $h) }}
{{- if not (regexMatch "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" $hname) }}
{{- fail (printf "%s.requiredHeaders[%d].name %q is not a header name" $section $k $hname) }}
{{- end }}
{{- $values := dig "values" (list) $h }}
{{- if and (not $existing) (not $values) }}
{{- fail (printf "%s.requiredHeaders[%d] (%s): values (accepted values) or %s.existingSecret (key %s) is required" $section $k $hname $section $file) }}
{{- end }}
{{- $headers = append $headers (dict "name" $hname "file" $file) }}
{{- $needed = append $needed (list $file (join "\n" $values) 0) }}
{{- end }}
{{- $files := list }}
{{- $filePaths := dict }}
{{- range $needed }}
{{- $file := index . 0 }}
{{- $entry := dict "file" $file "path" (printf "%s/%s" $name $file) "secret" (default $fullname $existing) "key" (ternary $file (printf "%s.%s" $name $file) (ne $existing "")) }}
{{- if not $existing }}
{{- $_ := set $entry "value" (index . 1) }}
{{- $_ := set $entry "generate" (index . 2) }}
{{- end }}
{{- $files = append $files $entry }}
{{- $_ := set $filePaths $file (printf "%s/%s/%s" $secretsDir $name $file) }}
{{- end }}
{{- $norm := dict "name" $name "path" (first $routes) "section" $section "auth" $auth "mode" $mode "files" $files "filePaths" $filePaths "headers" $headers "routes" $routes "existingSecret" $existing }}
{{- range $key := list "topicPrefix" "envelopes" "allowCidrs" "rateLimitPerIp" "maxInFlight" "maxBodyBytesInFlight" "protectFields" "raw" "cloudevents" }}
{{- $v := get $ep $key }}
{{- if not (or (kindIs "invalid" $v) (and (kindIs "string" $v) (not $v))) }}
{{- $_ := set $norm $key $v }}
{{- end }}
{{- end }}
{{- if and (hasKey $norm "maxBodyBytesInFlight") (lt (int64 $norm.maxBodyBytesInFlight) (int64 $.Values.http.maxBodyBytes)) }}
{{- fail (printf "%s.maxBodyBytesInFlight must be at least http.maxBodyBytes (%d)" $section (int64 $.Values.http.maxBodyBytes)) }}
{{- end }}
{{- $out = append $out $norm }}
{{- end }}
{{- /* Explicit shares fit the listener's totals (null totals: the connector's defaults). */}}
{{- range $share := list (list "maxInFlight" 4096) (list "maxBodyBytesInFlight" 67108864) }}
{{- $key := index $share 0 }}
{{- $total := index $.Values.http $key | default (index $share 1) | int64 }}
{{- $sum := 0 }}
{{- range $out }}
{{- $sum = add $sum (get . $key | default 0 | int64) }}
{{- end }}
{{- if gt (int64 $sum) $total }}
{{- fail (printf "endpoints[].%s add up to %d, more than http.%s (%d)" $key (int64 $sum) $key $total) }}
{{- end }}
{{- end }}
{{- dict "endpoints" $out | toJson }}
{{- end }}

{{/* The endpoints (see riskos-connector.endpoints) as a list. */}}
{{- define "riskos-connector.endpointList" -}}
{{- (include "riskos-connector.endpoints" . | fromJson).endpoints | toJson }}
{{- end }}

{{/*
The chart Secret's data (key: plain value) as YAML, only the keys the configuration needs:
the connector-wide credentials unless secrets.existingSecret is set, and the credentials of
every endpoint without an existingSecret. A missing bearer token or OAuth2 signing secret is
taken from the release's Secret when it exists (kept across upgrades), else generated. Fails
with a message naming the value when a needed credential is missing.
*/}}
{{- define "riskos-connector.secretData" -}}
{{- $s := .Values.secrets }}
{{- if not $s.existingSecret }}
{{- if and .Values.schemaRegistry.url .Values.schemaRegistry.username }}
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
{{- end }}
{{- $kept := dict }}
{{- $looked := false }}
{{- range $ep := include "riskos-connector.endpointList" . | fromJsonArray }}
{{- range $ep.files }}
{{- if hasKey . "value" }}
{{- $value := .value }}
{{- if and (not $value) .generate }}
{{- if not $looked }}
{{- $kept = include "riskos-connector.lookupSecretData" (dict "namespace" $.Release.Namespace "name" (include "riskos-connector.fullname" $)) | fromJson }}
{{- $looked = true }}
{{- end }}
{{- if hasKey $kept .key }}
{{- $value = index $kept .key | b64dec }}
{{- else }}
{{- $value = randAlphaNum (int .generate) }}
{{- end }}
{{- end }}
{{ .key | toJson }}: {{ $value | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The data of the Secret `.name` in namespace `.namespace` as it is in the cluster, as JSON
{key: base64 value}; {} when it does not exist, and always {} offline (`helm template`,
`--dry-run`): what keeps generated credentials and protection keys across upgrades. The one
place the chart calls `lookup` (the deployment tests replace this line to simulate a cluster).
*/}}
{{- define "riskos-connector.lookupSecretData" -}}
{{- $found := lookup "v1" "Secret" .namespace .name }}
{{- dig "data" (dict) ($found | default (dict)) | toJson }}
{{- end }}

{{/*
Personal data protection ([protection] in config.toml), as JSON:
  enabled:   keys are configured: some endpoint protects (protectFields or raw unset, true or
             "encrypt": the connector's defaults) or keys are given;
  secret:    the Secret holding the files hash_keys and encryption_keys: protection.existingSecret,
             or the chart's <fullname>-protection (inline keys, or generated ones);
  generated: the kinds of key the chart generates (none given: one key each, kept across
             upgrades by looking the Secret up);
  off:       the endpoints that store personal data in clear (protectFields false or raw keep).
Fails when inline keys come with an existingSecret, or a key is malformed or listed twice.
*/}}
{{- define "riskos-connector.protection" -}}
{{- $p := .Values.protection | default (dict) }}
{{- $existing := toString (dig "existingSecret" "" $p) }}
{{- $hash := dig "hashKeys" (list) $p }}
{{- $encryption := dig "encryptionKeys" (list) $p }}
{{- if and $existing (or $hash $encryption) }}
{{- fail (printf "protection.existingSecret is set: remove protection.%s (the keys are read from the existing Secret's hash_keys and encryption_keys)" (ternary "hashKeys" "encryptionKeys" (not (empty $hash)))) }}
{{- end }}
{{- range $kind := list (list "hashKeys" $hash) (list "encryptionKeys" $encryption) }}
{{- $kids := dict }}
{{- range $i, $key := index $kind 1 }}
{{- if not (regexMatch "^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43}=$" (toString $key)) }}
{{- fail (printf "protection.%s[%d] must be kid:base64(32 bytes), e.g. from `riskos-connector keys generate`" (index $kind 0) $i) }}
{{- end }}
{{- $kid := first (splitList ":" (toString $key)) }}
{{- if hasKey $kids $kid }}
{{- fail (printf "protection.%s: the key id %q is listed twice" (index $kind 0) $kid) }}
{{- end }}
{{- $_ := set $kids $kid true }}
{{- end }}
{{- end }}
{{- $protecting := false }}
{{- $off := list }}
{{- range $ep := include "riskos-connector.endpointList" . | fromJsonArray }}
{{- $fields := ne (toString (get $ep "protectFields")) "false" }}
{{- $raw := toString (default "encrypt" (get $ep "raw")) }}
{{- if or $fields (eq $raw "encrypt") }}
{{- $protecting = true }}
{{- end }}
{{- if or (not $fields) (eq $raw "keep") }}
{{- $off = append $off $ep.name }}
{{- end }}
{{- end }}
{{- $enabled := not (not (or $protecting $existing $hash $encryption)) }}
{{- $generated := list }}
{{- if not $existing }}
{{- if not $hash }}{{ $generated = append $generated "hash_keys" }}{{ end }}
{{- if not $encryption }}{{ $generated = append $generated "encryption_keys" }}{{ end }}
{{- end }}
{{- dict "enabled" $enabled "secret" (default (printf "%s-protection" (include "riskos-connector.fullname" .)) $existing) "existingSecret" $existing "generated" (ternary $generated (list) $enabled) "off" $off | toJson }}
{{- end }}

{{/*
The chart's protection Secret's data (file: plain value) as YAML: the inline keys, one per
line, and for a kind without any, the key kept in the release's Secret, else a new one
`k<8 random characters>:<32 random bytes, base64>`: a fresh id each time, so that a key
generated again (a reinstall, an offline render) never reuses the id of an earlier one. Empty with protection.existingSecret or protection off.
*/}}
{{- define "riskos-connector.protectionSecretData" -}}
{{- $p := include "riskos-connector.protection" . | fromJson }}
{{- if and $p.enabled (not $p.existingSecret) }}
{{- $kept := dict }}
{{- if $p.generated }}
{{- $kept = include "riskos-connector.lookupSecretData" (dict "namespace" .Release.Namespace "name" $p.secret) | fromJson }}
{{- end }}
{{- range $file := list "hash_keys" "encryption_keys" }}
{{- $value := join "\n" (index $.Values.protection (ternary "hashKeys" "encryptionKeys" (eq $file "hash_keys")) | default (list)) }}
{{- if not $value }}
{{- if hasKey $kept $file }}
{{- $value = index $kept $file | b64dec }}
{{- else }}
{{- $value = printf "k%s:%s" (randAlphaNum 8 | lower) (randBytes 32) }}
{{- end }}
{{- end }}
{{ $file }}: {{ $value | toJson }}
{{- end }}
{{- end }}
{{- end }}

{{/* The connector-wide credential files at the top of secretsDir (no endpoint may be named so). */}}
{{- define "riskos-connector.connectorSecretFiles" -}}
{{- list "schema_registry_password" "schema_registry_bearer_token" "schema_registry_oauth_client_secret" "kafka_sasl_password" "kafka_sasl_oidc_client_secret" "kafka_tls_key_password" | toJson }}
{{- end }}

{{/*
How the connector reaches the customer's cluster and registry ([kafka.tls], [kafka.sasl],
the registry's bearer token, OAuth and TLS), as JSON, checked (fails naming the value):
  kafkaTls:    {enabled, verifyHostname, files: {config key: path}, mounts: [{secret, key, path}]}
               the kafka-tls volume (paths relative to kafkaTlsDir);
  sasl:        {mechanism, files: {config key: path}};
  registry:    {files: {config key: path}, tlsMounts: [{secret, key, path}]} (schema-registry-tls);
  secretFiles: [{secret, key, path}] the files it adds to the secrets volume (top level).
Every credential comes from a Secret made outside the chart (existingSecret), never from values.
*/}}
{{- define "riskos-connector.connection" -}}
{{- $secretsDir := include "riskos-connector.secretsDir" . }}
{{- $secretFiles := list }}
{{- /* [kafka.tls] */}}
{{- $t := .Values.kafka.tls }}
{{- $tls := dict "enabled" (not (not $t.enabled)) "verifyHostname" (ne (toString $t.verifyHostname) "false") "files" (dict) "mounts" (list) }}
{{- if not $t.enabled }}
{{- range $key := list "existingSecret" "caSecret" "clientCertificate" "keyPasswordKey" }}
{{- if index $t $key }}
{{- fail (printf "kafka.tls.%s is set but kafka.tls.enabled is false: set kafka.tls.enabled: true to use TLS" $key) }}
{{- end }}
{{- end }}
{{- else }}
{{- $dir := include "riskos-connector.kafkaTlsDir" . }}
{{- $caSecret := default $t.existingSecret $t.caSecret }}
{{- if and $caSecret $t.caKey }}
{{- $_ := set $tls "mounts" (append $tls.mounts (dict "secret" $caSecret "key" $t.caKey "path" "ca.crt")) }}
{{- $_ := set $tls.files "ca_file" (printf "%s/ca.crt" $dir) }}
{{- else if $t.caSecret }}
{{- fail "kafka.tls.caSecret is set but kafka.tls.caKey is empty: name the key holding the CA" }}
{{- end }}
{{- if $t.clientCertificate }}
{{- if not $t.existingSecret }}
{{- fail (printf "kafka.tls.clientCertificate: kafka.tls.existingSecret (a Secret with the client certificate under %q and its key under %q) is required" $t.certKey $t.keyKey) }}
{{- end }}
{{- $_ := set $tls "mounts" (concat $tls.mounts (list (dict "secret" $t.existingSecret "key" $t.certKey "path" "tls.crt") (dict "secret" $t.existingSecret "key" $t.keyKey "path" "tls.key"))) }}
{{- $_ := set $tls.files "cert_file" (printf "%s/tls.crt" $dir) }}
{{- $_ := set $tls.files "key_file" (printf "%s/tls.key" $dir) }}
{{- if $t.keyPasswordKey }}
{{- $secretFiles = append $secretFiles (dict "secret" $t.existingSecret "key" $t.keyPasswordKey "path" "kafka_tls_key_password") }}
{{- $_ := set $tls.files "key_password_file" (printf "%s/kafka_tls_key_password" $secretsDir) }}
{{- end }}
{{- else if $t.keyPasswordKey }}
{{- fail "kafka.tls.keyPasswordKey is set without kafka.tls.clientCertificate (it is the client key's password)" }}
{{- else if and $t.existingSecret (or $t.caSecret (not $t.caKey)) }}
{{- fail "kafka.tls.existingSecret is set but nothing is read from it: set kafka.tls.clientCertificate, or kafka.tls.caKey (without kafka.tls.caSecret) for its CA" }}
{{- end }}
{{- end }}
{{- /* [kafka.sasl] */}}
{{- $s := .Values.kafka.sasl }}
{{- $mechanism := toString $s.mechanism }}
{{- $passwordMechanisms := list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512" }}
{{- $sasl := dict "mechanism" $mechanism "files" (dict) }}
{{- /* Values that belong to some mechanisms only: [value, name, mechanisms]. */}}
{{- range list (list $s.username "username" $passwordMechanisms) (list $s.existingSecret "existingSecret" (append $passwordMechanisms "OAUTHBEARER")) (list $s.oidc.tokenEndpointUrl "oidc.tokenEndpointUrl" (list "OAUTHBEARER")) (list $s.oidc.clientId "oidc.clientId" (list "OAUTHBEARER")) (list $s.oidc.scope "oidc.scope" (list "OAUTHBEARER")) (list $s.oidc.extensions "oidc.extensions" (list "OAUTHBEARER")) (list $s.awsMskIam.region "awsMskIam.region" (list "AWS_MSK_IAM")) }}
{{- if and (index . 0) (not (has $mechanism (index . 2))) }}
{{- if $mechanism }}
{{- fail (printf "kafka.sasl.%s does not apply to kafka.sasl.mechanism=%s (only to %s): remove it" (index . 1) $mechanism (join ", " (index . 2))) }}
{{- else }}
{{- fail (printf "kafka.sasl.%s is set but kafka.sasl.mechanism is not (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or AWS_MSK_IAM)" (index . 1)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $mechanism .Values.kafka.saslPasswordFromSecret }}
{{- fail "kafka.saslPasswordFromSecret is for SASL set up in kafka.librdkafka; with kafka.sasl.mechanism the password comes from kafka.sasl.existingSecret: remove kafka.saslPasswordFromSecret" }}
{{- end }}
{{- if has $mechanism $passwordMechanisms }}
{{- if not $s.username }}
{{- fail (printf "kafka.sasl.mechanism=%s: kafka.sasl.username is required" $mechanism) }}
{{- end }}
{{- if not $s.existingSecret }}
{{- fail (printf "kafka.sasl.mechanism=%s: kafka.sasl.existingSecret (a Secret made outside the chart, the password under its key %q = kafka.sasl.passwordKey) is required" $mechanism $s.passwordKey) }}
{{- end }}
{{- $secretFiles = append $secretFiles (dict "secret" $s.existingSecret "key" $s.passwordKey "path" "kafka_sasl_password") }}
{{- $_ := set $sasl.files "password_file" (printf "%s/kafka_sasl_password" $secretsDir) }}
{{- else if eq $mechanism "OAUTHBEARER" }}
{{- range $key := list "tokenEndpointUrl" "clientId" }}
{{- if not (index $s.oidc $key) }}
{{- fail (printf "kafka.sasl.mechanism=OAUTHBEARER: kafka.sasl.oidc.%s is required" $key) }}
{{- end }}
{{- end }}
{{- if not $s.existingSecret }}
{{- fail (printf "kafka.sasl.mechanism=OAUTHBEARER: kafka.sasl.existingSecret (a Secret made outside the chart, the client secret under its key %q = kafka.sasl.oidc.clientSecretKey) is required" $s.oidc.clientSecretKey) }}
{{- end }}
{{- $secretFiles = append $secretFiles (dict "secret" $s.existingSecret "key" $s.oidc.clientSecretKey "path" "kafka_sasl_oidc_client_secret") }}
{{- $_ := set $sasl.files "client_secret_file" (printf "%s/kafka_sasl_oidc_client_secret" $secretsDir) }}
{{- else if and (eq $mechanism "AWS_MSK_IAM") (not $t.enabled) }}
{{- fail "kafka.sasl.mechanism=AWS_MSK_IAM: MSK serves IAM access control over TLS only (port 9098): set kafka.tls.enabled: true" }}
{{- end }}
{{- /* The registry: one authentication at most (Basic's password is the chart's secrets.*), TLS. */}}
{{- $r := .Values.schemaRegistry }}
{{- $registry := dict "files" (dict) "tlsMounts" (list) }}
{{- if $r.url }}
{{- $o := $r.oauth }}
{{- $kinds := list }}
{{- if $r.username }}{{ $kinds = append $kinds "schemaRegistry.username (Basic)" }}{{ end }}
{{- if $r.bearerToken.existingSecret }}{{ $kinds = append $kinds "schemaRegistry.bearerToken (a bearer token)" }}{{ end }}
{{- if or $o.tokenEndpointUrl $o.clientId $o.existingSecret $o.scope $o.logicalCluster $o.identityPoolId }}{{ $kinds = append $kinds "schemaRegistry.oauth (OAuth client credentials)" }}{{ end }}
{{- if gt (len $kinds) 1 }}
{{- fail (printf "%s: the registry takes one authentication (Basic, a bearer token or OAuth): remove all but one" (join " and " $kinds)) }}
{{- end }}
{{- if $r.bearerToken.existingSecret }}
{{- $secretFiles = append $secretFiles (dict "secret" $r.bearerToken.existingSecret "key" $r.bearerToken.key "path" "schema_registry_bearer_token") }}
{{- $_ := set $registry.files "bearer_token_file" (printf "%s/schema_registry_bearer_token" $secretsDir) }}
{{- end }}
{{- if has "schemaRegistry.oauth (OAuth client credentials)" $kinds }}
{{- range $key := list "tokenEndpointUrl" "clientId" }}
{{- if not (index $o $key) }}
{{- fail (printf "schemaRegistry.oauth.%s is required with schemaRegistry.oauth" $key) }}
{{- end }}
{{- end }}
{{- if not $o.existingSecret }}
{{- fail (printf "schemaRegistry.oauth.existingSecret (a Secret made outside the chart, the client secret under its key %q = schemaRegistry.oauth.clientSecretKey) is required with schemaRegistry.oauth" $o.clientSecretKey) }}
{{- end }}
{{- $secretFiles = append $secretFiles (dict "secret" $o.existingSecret "key" $o.clientSecretKey "path" "schema_registry_oauth_client_secret") }}
{{- $_ := set $registry.files "oauth.client_secret_file" (printf "%s/schema_registry_oauth_client_secret" $secretsDir) }}
{{- end }}
{{- $rt := $r.tls }}
{{- $dir := include "riskos-connector.registryTlsDir" . }}
{{- if and $rt.existingSecret $rt.caKey }}
{{- $_ := set $registry "tlsMounts" (append $registry.tlsMounts (dict "secret" $rt.existingSecret "key" $rt.caKey "path" "ca.crt")) }}
{{- $_ := set $registry.files "ca_file" (printf "%s/ca.crt" $dir) }}
{{- end }}
{{- if $rt.clientCertificate }}
{{- if not $rt.existingSecret }}
{{- fail (printf "schemaRegistry.tls.clientCertificate: schemaRegistry.tls.existingSecret (a Secret with the client certificate under %q and its key under %q) is required" $rt.certKey $rt.keyKey) }}
{{- end }}
{{- if not (hasPrefix "https://" $r.url) }}
{{- fail "schemaRegistry.tls.clientCertificate needs an https:// schemaRegistry.url (a client certificate is sent only over TLS)" }}
{{- end }}
{{- $_ := set $registry "tlsMounts" (concat $registry.tlsMounts (list (dict "secret" $rt.existingSecret "key" $rt.certKey "path" "tls.crt") (dict "secret" $rt.existingSecret "key" $rt.keyKey "path" "tls.key"))) }}
{{- $_ := set $registry.files "cert_file" (printf "%s/tls.crt" $dir) }}
{{- $_ := set $registry.files "key_file" (printf "%s/tls.key" $dir) }}
{{- else if and $rt.existingSecret (not $rt.caKey) }}
{{- fail "schemaRegistry.tls.existingSecret is set but nothing is read from it: set schemaRegistry.tls.caKey or schemaRegistry.tls.clientCertificate" }}
{{- end }}
{{- end }}
{{- dict "kafkaTls" $tls "sasl" $sasl "registry" $registry "secretFiles" $secretFiles | toJson }}
{{- end }}

{{/*
The `sources` of a projected volume for `.mounts` ([{secret, key, path}]): one source per
Secret, in first-use order, each with its items.
*/}}
{{- define "riskos-connector.secretSources" -}}
{{- $order := list }}
{{- $items := dict }}
{{- range .mounts }}
{{- if not (hasKey $items .secret) }}
{{- $order = append $order .secret }}
{{- $_ := set $items .secret list }}
{{- end }}
{{- $_ := set $items .secret (append (get $items .secret) (dict "key" .key "path" .path)) }}
{{- end }}
{{- range $order }}
- secret:
    name: {{ . }}
    items:
      {{- range get $items . }}
      - key: {{ .key | quote }}
        path: {{ .path | quote }}
      {{- end }}
{{- end }}
{{- end }}

{{/*
The files mounted under secretsDir, as JSON {"mounts": [{secret, key, path}]}: the
connector-wide ones at the top (the schema registry's password, token or client secret, the
Kafka SASL password or client secret, the Kafka client key's password), every endpoint's
credential files under <endpoint>/.
*/}}
{{- define "riskos-connector.secretMounts" -}}
{{- $mounts := list }}
{{- if and .Values.schemaRegistry.url .Values.schemaRegistry.username }}
{{- $mounts = append $mounts (dict "secret" (include "riskos-connector.secretName" .) "key" "schema_registry_password" "path" "schema_registry_password") }}
{{- end }}
{{- $mounts = concat $mounts (include "riskos-connector.connection" . | fromJson).secretFiles }}
{{- range $ep := include "riskos-connector.endpointList" . | fromJsonArray }}
{{- range $ep.files }}
{{- $mounts = append $mounts (dict "secret" .secret "key" .key "path" .path) }}
{{- end }}
{{- end }}
{{- dict "mounts" $mounts | toJson }}
{{- end }}

{{/* "true" when a secrets volume is mounted (some configured file lives in a Secret). */}}
{{- define "riskos-connector.hasSecret" -}}
{{- if (include "riskos-connector.secretMounts" . | fromJson).mounts }}true{{ end }}
{{- end }}

{{/*
config.toml. Strings and lists are written with toJson: a JSON string or array of strings is a
valid TOML value. Optional keys are left out when unset so the connector's defaults apply.
*/}}
{{- define "riskos-connector.configToml" -}}
{{- $secrets := include "riskos-connector.secretsDir" . }}
{{- $forbidden := list "sasl.password" "ssl.key.password" "ssl.keystore.password" "ssl.key.pem" "sasl.oauthbearer.client.secret" "sasl.oauthbearer.config" }}
# Rendered by the riskos-connector Helm chart. Credentials are not in this file: the *_file
# keys point at the Secrets mounted under {{ $secrets }}/
# (an endpoint's under <name>/) and, for the protection keys, under {{ include "riskos-connector.protectionDir" . }}/.
# Every key can be overridden with the env var RISKOS_<SECTION>__<KEY>; an endpoint's with
# RISKOS_ENDPOINTS__<NAME>__<KEY>.

[http]
listen = {{ printf "0.0.0.0:%d" (int64 .Values.http.port) | toJson }}
max_body_bytes = {{ int64 .Values.http.maxBodyBytes }}
{{- with .Values.http.trustedProxies }}
trusted_proxies = {{ toJson . }}
{{- end }}
{{- if not (kindIs "invalid" .Values.http.maxInFlight) }}
max_in_flight = {{ int64 .Values.http.maxInFlight }}
{{- end }}
{{- if not (kindIs "invalid" .Values.http.maxBodyBytesInFlight) }}
max_body_bytes_in_flight = {{ int64 .Values.http.maxBodyBytesInFlight }}
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
{{- $connection := include "riskos-connector.connection" . | fromJson }}
{{- $kafkaTls := $connection.kafkaTls }}
{{- if $kafkaTls.enabled }}

[kafka.tls]
enabled = true
{{- range $key := list "ca_file" "cert_file" "key_file" "key_password_file" }}
{{- with index $kafkaTls.files $key }}
{{ $key }} = {{ toJson . }}
{{- end }}
{{- end }}
{{- if not $kafkaTls.verifyHostname }}
verify_hostname = false
{{- end }}
{{- end }}
{{- with $connection.sasl.mechanism }}
{{- $s := $.Values.kafka.sasl }}
{{- $files := $connection.sasl.files }}

[kafka.sasl]
mechanism = {{ toJson . }}
{{- with $s.username }}
username = {{ toString . | toJson }}
{{- end }}
{{- with $files.password_file }}
password_file = {{ toJson . }}
{{- end }}
{{- if eq . "OAUTHBEARER" }}

[kafka.sasl.oidc]
token_endpoint_url = {{ $s.oidc.tokenEndpointUrl | toJson }}
client_id = {{ toString $s.oidc.clientId | toJson }}
client_secret_file = {{ $files.client_secret_file | toJson }}
{{- with $s.oidc.scope }}
scope = {{ toJson . }}
{{- end }}
{{- with $s.oidc.extensions }}

[kafka.sasl.oidc.extensions]
{{- range $key, $value := . }}
{{ toJson $key }} = {{ toString $value | toJson }}
{{- end }}
{{- end }}
{{- else if and (eq . "AWS_MSK_IAM") $s.awsMskIam.region }}

[kafka.sasl.aws_msk_iam]
region = {{ $s.awsMskIam.region | toJson }}
{{- end }}
{{- end }}
{{- with .Values.kafka.librdkafka }}

[kafka.librdkafka]
{{- range $key, $value := . }}
{{- if has ($key | lower | replace "_" ".") $forbidden }}
{{- fail (printf "kafka.librdkafka.%s is a secret: use kafka.sasl or kafka.tls with an existingSecret (or kafka.saslPasswordFromSecret, or extraEnv with a secretKeyRef), not the ConfigMap" $key) }}
{{- end }}
{{ toJson $key }} = {{ toString $value | toJson }}
{{- end }}
{{- end }}

{{- if .Values.schemaRegistry.url }}

[schema_registry]
url = {{ .Values.schemaRegistry.url | toJson }}
timeout_ms = {{ int64 .Values.schemaRegistry.timeoutMs }}
check_interval_secs = {{ int64 .Values.schemaRegistry.checkIntervalSecs }}
{{- with .Values.schemaRegistry.compatibility }}
compatibility = {{ toJson . }}
{{- end }}
{{- if .Values.schemaRegistry.username }}
username = {{ .Values.schemaRegistry.username | toJson }}
password_file = {{ printf "%s/schema_registry_password" $secrets | toJson }}
{{- end }}
{{- $registry := (include "riskos-connector.connection" . | fromJson).registry }}
{{- range $key := list "bearer_token_file" "ca_file" "cert_file" "key_file" }}
{{- with index $registry.files $key }}
{{ $key }} = {{ toJson . }}
{{- end }}
{{- end }}
{{- with index $registry.files "oauth.client_secret_file" }}
{{- $o := $.Values.schemaRegistry.oauth }}

[schema_registry.oauth]
token_endpoint_url = {{ $o.tokenEndpointUrl | toJson }}
client_id = {{ toString $o.clientId | toJson }}
client_secret_file = {{ toJson . }}
{{- range $key := list "scope" "logicalCluster" "identityPoolId" }}
{{- with index $o $key }}
{{ $key | snakecase }} = {{ toJson . }}
{{- end }}
{{- end }}
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
partitions = {{ int64 .Values.topics.partitions }}
replication_factor = {{ int64 .Values.topics.replicationFactor }}
create = {{ .Values.topics.create }}
{{- with .Values.topics.minInsyncReplicas }}
min_insync_replicas = {{ int64 . }}
{{- end }}
{{- if .Values.topics.allowSingleReplicaAcks }}
allow_single_replica_acks = true
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
{{- if (include "riskos-connector.protection" . | fromJson).enabled }}
{{- $protectionDir := include "riskos-connector.protectionDir" . }}

# Keys of protected fields and bodies, one kid:base64 per line: the first protects, all
# unprotect. Losing them makes encrypted records unreadable and changes every token.
[protection]
hash_keys_file = {{ printf "%s/hash_keys" $protectionDir | toJson }}
encryption_keys_file = {{ printf "%s/encryption_keys" $protectionDir | toJson }}
{{- end }}

{{- range $ep := include "riskos-connector.endpointList" . | fromJsonArray }}
{{- $auth := $ep.auth }}
{{- $files := $ep.filePaths }}

[[endpoints]]
name = {{ $ep.name | toJson }}
path = {{ $ep.path | toJson }}
{{- with $ep.topicPrefix }}
topic_prefix = {{ toJson . }}
{{- end }}
{{- with $ep.envelopes }}
envelopes = {{ toJson . }}
{{- end }}
{{- with $ep.allowCidrs }}
allow_cidrs = {{ toJson . }}
{{- end }}
{{- range $key := list "rateLimitPerIp" "maxInFlight" "maxBodyBytesInFlight" }}
{{- if hasKey $ep $key }}
{{ $key | snakecase }} = {{ index $ep $key | int64 }}
{{- end }}
{{- end }}
{{- if hasKey $ep "protectFields" }}
protect_fields = {{ $ep.protectFields }}
{{- end }}
{{- with $ep.raw }}
raw = {{ toJson . }}
{{- end }}
{{- if $ep.cloudevents }}
cloudevents = true
{{- end }}

[endpoints.auth]
mode = {{ $ep.mode | toJson }}
{{- if eq $ep.mode "basic" }}

[endpoints.auth.basic]
credentials_file = {{ $files.basic_credentials | toJson }}
{{- else if eq $ep.mode "bearer" }}

[endpoints.auth.bearer]
tokens_file = {{ $files.bearer_tokens | toJson }}
{{- else if eq $ep.mode "oauth2" }}
{{- $o := dig "oauth2" (dict) $auth }}

[endpoints.auth.oauth2]
{{- with dig "jwksUrl" "" $o }}
jwks_url = {{ toJson . }}
{{- end }}
{{- with dig "issuer" "" $o }}
issuer = {{ toJson . }}
{{- end }}
{{- with dig "audience" "" $o }}
audience = {{ toJson . }}
{{- end }}
{{- if hasKey $files "oauth2_clients" }}
{{- $te := dig "tokenEndpoint" (dict) $o }}

[endpoints.auth.oauth2.token_endpoint]
{{- with dig "path" "" $te }}
path = {{ toJson . }}
{{- end }}
clients_file = {{ $files.oauth2_clients | toJson }}
signing_secrets_file = {{ $files.oauth2_signing | toJson }}
ttl_secs = {{ dig "ttlSecs" 300 $te | int64 }}
{{- end }}
{{- else if eq $ep.mode "hmac" }}
{{- $h := dig "hmac" (dict) $auth }}

[endpoints.auth.hmac]
secrets_file = {{ $files.hmac_secrets | toJson }}
{{- with dig "header" "" $h }}
header = {{ toJson . }}
{{- end }}
{{- with dig "timestampHeader" "" $h }}
timestamp_header = {{ toJson . }}
{{- end }}
tolerance_secs = {{ dig "toleranceSecs" 300 $h | int64 }}
{{- else if eq $ep.mode "standard-webhooks" }}

[endpoints.auth.standard_webhooks]
{{- with $files.standard_webhooks_secrets }}
secrets_file = {{ toJson . }}
{{- end }}
{{- with $files.standard_webhooks_public_keys }}
public_keys_file = {{ toJson . }}
{{- end }}
tolerance_secs = {{ dig "standardWebhooks" "toleranceSecs" 300 $auth | int64 }}
{{- end }}
{{- range $ep.headers }}

[[endpoints.required_headers]]
name = {{ .name | toJson }}
values_file = {{ index $files .file | toJson }}
{{- end }}
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
