{{/*
Pieces of every pod that runs the image on the project (the roles, and the backup CronJob):
the same ServiceAccount, security, environment, secrets and project files everywhere.
*/}}

{{/* The ServiceAccount, its token (OpenBao's Kubernetes login only), no service links: $ */}}
{{- define "ghapplets.podAccess" -}}
serviceAccountName: {{ include "ghapplets.serviceAccountName" . }}
automountServiceAccountToken: {{ include "ghapplets.automountToken" . }}
enableServiceLinks: false  # no <SERVICE>_PORT variables beside the GHAPPLETS_* settings
{{- end -}}

{{/* Pull secrets, priority class and the pod's security context: dict "ctx" $ "role" values */}}
{{- define "ghapplets.podExtras" -}}
{{- $ := .ctx -}}
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .role.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- include "ghapplets.podSecurityContext" $ | nindent 2 }}
{{- end -}}

{{/* podSecurityContext without its nulls; on OpenShift without the UID and groups: $ */}}
{{- define "ghapplets.podSecurityContext" -}}
{{- $podSecurity := dict -}}
{{- range $key, $value := .Values.podSecurityContext -}}
{{- if not (kindIs "invalid" $value) -}}
{{- $_ := set $podSecurity $key $value -}}
{{- end -}}
{{- end -}}
{{- if .Values.openshift -}}
{{- $podSecurity = omit $podSecurity "runAsUser" "runAsGroup" "fsGroup" -}}
{{- end -}}
{{- toYaml $podSecurity -}}
{{- end -}}

{{/* A container's securityContext; on OpenShift without the UID and group: $ */}}
{{- define "ghapplets.securityContext" -}}
{{- $security := .Values.securityContext -}}
{{- if .Values.openshift -}}
{{- $security = omit $security "runAsUser" "runAsGroup" -}}
{{- end -}}
{{- toYaml $security -}}
{{- end -}}

{{/*
A container's env and envFrom: the project and data folders, secrets.env, the role's extraEnv,
and secrets.existingSecret (or the chart's Secret) as variables.
dict "ctx" $ "role" values ["metricsAddress" "host:port"] ["extra" (list of variables)]
*/}}
{{- define "ghapplets.env" -}}
{{- $ := .ctx -}}
env:
  - name: GHAPPLETS_CONFIG
    value: /etc/ghapplets
  - name: GHAPPLETS_DATA_DIR
    value: /var/lib/ghapplets/data
  {{- with .metricsAddress }}
  - name: GHAPPLETS_SERVER__METRICS_ADDRESS
    value: {{ . | quote }}
  {{- end }}
  {{- range $name, $ref := $.Values.secrets.env }}
  - name: {{ $name }}
    valueFrom:
      secretKeyRef:
        name: {{ default $.Values.secrets.existingSecret $ref.secret | required (printf "secrets.env.%s.secret (or secrets.existingSecret) names no Secret" $name) }}
        key: {{ $ref.key }}
        {{- if $ref.optional }}
        optional: true
        {{- end }}
  {{- end }}
  {{- with .extra }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .role.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- if or $.Values.secrets.existingSecret $.Values.secrets.create }}
envFrom:
  {{- with $.Values.secrets.existingSecret }}
  - secretRef:
      name: {{ . }}
  {{- end }}
  {{- if $.Values.secrets.create }}
  - secretRef:
      name: {{ include "ghapplets.fullname" $ }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The project's mounts: ghapplets.yaml, /tmp, the data volume, applets, a Kubernetes
secrets volume, extraVolumeMounts: $ */}}
{{- define "ghapplets.projectMounts" -}}
{{- $secretsConfig := default dict .Values.config.secrets -}}
- name: config
  mountPath: /etc/ghapplets/ghapplets.yaml
  subPath: ghapplets.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/ghapplets
{{- if .Values.applets.volume }}
- name: applets
  mountPath: /etc/ghapplets/applets
  readOnly: true
{{- end }}
{{- range $i, $applet := .Values.applets.configMaps }}
- name: applet-{{ $i }}
  mountPath: /etc/ghapplets/applets/{{ $applet.name }}
  readOnly: true
{{- end }}
{{- if eq (default "embedded" $secretsConfig.backend) "kubernetes" }}
- name: secrets
  mountPath: {{ $secretsConfig.path }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The volumes of those mounts: dict "ctx" $ "data" <the data volume's source, or empty:
a claim template's> ["note" "a comment on it"] */}}
{{- define "ghapplets.projectVolumes" -}}
{{- $ := .ctx -}}
{{- $note := .note -}}
{{- $secretsConfig := default dict $.Values.config.secrets -}}
- name: config
  configMap:
    name: {{ include "ghapplets.fullname" $ }}-config
- name: tmp
  emptyDir:
    sizeLimit: {{ $.Values.tmpSizeLimit }}
{{- with .data }}
- name: data{{ with $note }}  # {{ . }}{{ end }}
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.applets.volume }}
- name: applets
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- range $i, $applet := $.Values.applets.configMaps }}
- name: applet-{{ $i }}
  configMap:
    name: {{ default $applet.name $applet.configMap }}
    defaultMode: {{ default 365 $applet.defaultMode }}
    {{- with $applet.items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- if eq (default "embedded" $secretsConfig.backend) "kubernetes" }}
- name: secrets
  {{- toYaml $.Values.secrets.volume | nindent 2 }}
{{- end }}
{{- with $.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The pod template of a role: dict "ctx" $ "component" "serve|gateway|worker".
Every role runs the same image with its command: `serve`, `gateway` or `worker`.
*/}}
{{- define "ghapplets.podTemplate" -}}
{{- $ := .ctx -}}
{{- $component := .component -}}
{{- $role := index $.Values $component -}}
{{- $selector := include "ghapplets.selectorLabels" (dict "ctx" $ "component" $component) | fromYaml -}}
{{- $isWorker := eq $component "worker" -}}
{{- $port := ternary ($.Values.worker.port | int) 8080 $isWorker -}}
{{- $host := $.Values.bindAddress -}}
{{- $metricsHost := ternary (printf "[%s]" $host) $host (contains ":" $host) -}}
metadata:
  labels:
    {{- include "ghapplets.componentLabels" (dict "ctx" $ "component" $component) | nindent 4 }}
    {{- with $role.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") $ | sha256sum }}
    {{- if $.Values.secrets.create }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") $ | sha256sum }}
    {{- end }}
    {{- with $role.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- include "ghapplets.podAccess" $ | nindent 2 }}
  terminationGracePeriodSeconds: {{ include "ghapplets.terminationGracePeriodSeconds" $ }}
  {{- include "ghapplets.podExtras" (dict "ctx" $ "role" $role) | trim | nindent 2 }}
  containers:
    - name: {{ $component }}
      image: {{ include "ghapplets.image" $ | quote }}
      imagePullPolicy: {{ $.Values.image.pullPolicy }}
      args:
        - {{ $component }}
        - --host
        - {{ $host | quote }}
        - --port
        - {{ $port | quote }}
        {{- if not $isWorker }}
        - --processes
        - {{ $role.processes | quote }}
        {{- end }}
        {{- range $role.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      {{- include "ghapplets.env" (dict "ctx" $ "role" $role "metricsAddress" (printf "%s:%d" $metricsHost ($.Values.metrics.port | int))) | nindent 6 }}
      ports:
        - name: http
          containerPort: {{ $port }}
          protocol: TCP
        - name: metrics
          containerPort: {{ $.Values.metrics.port }}
          protocol: TCP
      startupProbe:
        httpGet: {path: /healthz, port: http}
        {{- toYaml $.Values.probes.startup | nindent 8 }}
      livenessProbe:
        httpGet: {path: /healthz, port: http}
        {{- toYaml $.Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet: {path: /readyz, port: http}
        {{- toYaml $.Values.probes.readiness | nindent 8 }}
      resources:
        {{- toYaml $role.resources | nindent 8 }}
      securityContext:
        {{- include "ghapplets.securityContext" $ | nindent 8 }}
      volumeMounts:
        {{- include "ghapplets.projectMounts" $ | nindent 8 }}
  volumes:
    {{- $data := dict "volume" dict -}}
    {{- if ne $component "serve" -}}
    {{- $data = dict "volume" (dict "emptyDir" dict) "note" "stateless on NATS and PostgreSQL: the metrics of the pod's processes" -}}
    {{- else if not $.Values.serve.persistence.enabled -}}
    {{- $data = dict "volume" (dict "emptyDir" dict) "note" "persistence.enabled is false: the data goes with the pod" -}}
    {{- else if $.Values.serve.persistence.existingClaim -}}
    {{- $data = dict "volume" (dict "persistentVolumeClaim" (dict "claimName" $.Values.serve.persistence.existingClaim)) -}}
    {{- end }}
    {{- include "ghapplets.projectVolumes" (dict "ctx" $ "data" $data.volume "note" $data.note) | nindent 4 }}
  {{- with $role.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $role.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $spread := and (hasKey $role "spread") $role.spread }}
  {{- if $role.affinity }}
  affinity:
    {{- toYaml $role.affinity | nindent 4 }}
  {{- else if $spread }}
  affinity:
    podAntiAffinity:  # prefer a node without another pod of this role
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- toYaml $selector | nindent 16 }}
  {{- end }}
  {{- if or $spread $role.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- if $spread }}
    {{- range list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
    - maxSkew: 1
      topologyKey: {{ . }}
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- toYaml $selector | nindent 10 }}
      matchLabelKeys: [pod-template-hash]
    {{- end }}
    {{- end }}
    {{- with $role.topologySpreadConstraints }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end -}}
