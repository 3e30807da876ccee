{{/* The chart's name (the middle of the objects' names). */}}
{{- define "ghapplets.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name prefix: <release>-ghapplets, or the release alone when it says ghapplets. */}}
{{- define "ghapplets.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "ghapplets.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ghapplets.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "ghapplets.labels" -}}
helm.sh/chart: {{ include "ghapplets.chart" . }}
app.kubernetes.io/name: ghapplets
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "ghapplets.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ghapplets
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of a role's objects: dict "ctx" $ "component" "serve|gateway|worker". */}}
{{- define "ghapplets.componentLabels" -}}
{{ include "ghapplets.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The selector of a role's pods: dict "ctx" $ "component" "...". */}}
{{- define "ghapplets.selectorLabels" -}}
app.kubernetes.io/name: ghapplets
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ghapplets.version" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "ghapplets.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "ghapplets.version" .) -}}
{{- end -}}
{{- end -}}

{{- define "ghapplets.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ghapplets.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Service that takes webhooks: serve's or the gateways'. */}}
{{- define "ghapplets.webhookService" -}}
{{- if eq .Values.mode "distributed" -}}
{{- printf "%s-gateway" (include "ghapplets.fullname" .) -}}
{{- else -}}
{{- printf "%s-serve" (include "ghapplets.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The roles this mode runs. */}}
{{- define "ghapplets.roles" -}}
{{- if eq .Values.mode "distributed" -}}gateway worker{{- else -}}serve{{- end -}}
{{- end -}}

{{/* config.server.drain_timeout, in whole seconds (default 30). */}}
{{- define "ghapplets.drainTimeout" -}}
{{- $server := default dict .Values.config.server -}}
{{- $drain := 30 -}}
{{- if hasKey $server "drain_timeout" -}}{{- $drain = $server.drain_timeout -}}{{- end -}}
{{- ceil $drain | int -}}
{{- end -}}

{{/* Above the drain timeout, so SIGTERM's drain ends before the kubelet's SIGKILL. */}}
{{- define "ghapplets.terminationGracePeriodSeconds" -}}
{{- $drain := include "ghapplets.drainTimeout" . | int -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $drain 15 -}}
{{- else -}}
{{- $grace := .Values.terminationGracePeriodSeconds | int -}}
{{- if le $grace $drain -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be above config.server.drain_timeout (%d): the kubelet would kill pods still draining" $grace $drain) -}}
{{- end -}}
{{- $grace -}}
{{- end -}}
{{- end -}}

{{/* Whether the pods get the service account token: OpenBao's Kubernetes login needs it. */}}
{{- define "ghapplets.automountToken" -}}
{{- if kindIs "invalid" .Values.serviceAccount.automountServiceAccountToken -}}
{{- $secrets := default dict .Values.config.secrets -}}
{{- $backend := default "embedded" $secrets.backend -}}
{{- if and (has $backend (list "openbao" "vault")) $secrets.kubernetes_role -}}true{{- else -}}false{{- end -}}
{{- else -}}
{{- .Values.serviceAccount.automountServiceAccountToken -}}
{{- end -}}
{{- end -}}

{{/* The JetStream names of the broker prefix: dict "prefix" p "stream" s. */}}
{{- define "ghapplets.jetstreamStream" -}}
{{- printf "%s_%s" .prefix .stream | upper -}}
{{- end -}}
{{- define "ghapplets.jetstreamConsumer" -}}
{{- printf "%s-%s" .prefix .stream -}}
{{- end -}}

{{/* Checks of values that the schema cannot express. */}}
{{- define "ghapplets.checks" -}}
{{- $secrets := default dict .Values.config.secrets -}}
{{- $backend := default "embedded" $secrets.backend -}}
{{- if and (eq $backend "kubernetes") (empty .Values.secrets.volume) -}}
{{- fail "config.secrets.backend is kubernetes: set secrets.volume to the Secret (or projected volume) to mount at config.secrets.path" -}}
{{- end -}}
{{- if and (eq $backend "kubernetes") (empty $secrets.path) -}}
{{- fail "config.secrets.backend is kubernetes: set config.secrets.path (e.g. /var/run/secrets/ghapplets)" -}}
{{- end -}}
{{- if eq .Values.mode "distributed" -}}
{{- $key := or .Values.secrets.existingSecret (hasKey .Values.secrets.env "GHAPPLETS_SECRET_KEY") (and .Values.secrets.create (hasKey .Values.secrets.values "GHAPPLETS_SECRET_KEY")) -}}
{{- if not $key -}}
{{- fail "mode: distributed needs GHAPPLETS_SECRET_KEY, the same in every pod: set secrets.existingSecret (a Secret with that key) or secrets.env.GHAPPLETS_SECRET_KEY" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.keda.enabled (ne .Values.mode "distributed") -}}
{{- fail "keda.enabled scales the workers of mode: distributed (mode is embedded)" -}}
{{- end -}}
{{- range list "gateway" "worker" -}}
{{- $pdb := index $.Values . "pdb" -}}
{{- if and $pdb.enabled (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) -}}
{{- fail (printf "%s.pdb: set minAvailable or maxUnavailable, not both" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
