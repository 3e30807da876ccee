{{/*
The pod template of a role: dict "ctx" $ "component" "serve|gateway|worker".
Every role runs the same image with its command: `serve`, `gateway` or `worker`.
*/}}
{{- define "ghapplets.podTemplate" -}}
{{- $ := .ctx -}}
{{- $component := .component -}}
{{- $role := index $.Values $component -}}
{{- $fullname := include "ghapplets.fullname" $ -}}
{{- $selector := include "ghapplets.selectorLabels" (dict "ctx" $ "component" $component) | fromYaml -}}
{{- $isWorker := eq $component "worker" -}}
{{- $port := ternary ($.Values.worker.port | int) 8080 $isWorker -}}
{{- $host := $.Values.bindAddress -}}
{{- $metricsHost := ternary (printf "[%s]" $host) $host (contains ":" $host) -}}
{{- $secretsConfig := default dict $.Values.config.secrets -}}
{{- $automount := include "ghapplets.automountToken" $ -}}
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
  serviceAccountName: {{ include "ghapplets.serviceAccountName" $ }}
  automountServiceAccountToken: {{ $automount }}
  enableServiceLinks: false  # no <SERVICE>_PORT variables beside the GHAPPLETS_* settings
  terminationGracePeriodSeconds: {{ include "ghapplets.terminationGracePeriodSeconds" $ }}
  {{- with $.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $role.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- $podSecurity := dict -}}
  {{- range $key, $value := $.Values.podSecurityContext -}}
  {{- if not (kindIs "invalid" $value) -}}
  {{- $_ := set $podSecurity $key $value -}}
  {{- end -}}
  {{- end -}}
  {{- if $.Values.openshift -}}
  {{- $podSecurity = omit $podSecurity "runAsUser" "runAsGroup" "fsGroup" -}}
  {{- end }}
  securityContext:
    {{- toYaml $podSecurity | nindent 4 }}
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
      env:
        - name: GHAPPLETS_CONFIG
          value: /etc/ghapplets
        - name: GHAPPLETS_DATA_DIR
          value: /var/lib/ghapplets/data
        - name: GHAPPLETS_SERVER__METRICS_ADDRESS
          value: {{ printf "%s:%d" $metricsHost ($.Values.metrics.port | int) | quote }}
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
        {{- with $role.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if or $.Values.secrets.existingSecret $.Values.secrets.create }}
      envFrom:
        {{- with $.Values.secrets.existingSecret }}
        - secretRef:
            name: {{ . }}
        {{- end }}
        {{- if $.Values.secrets.create }}
        - secretRef:
            name: {{ $fullname }}
        {{- end }}
      {{- end }}
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
      {{- $security := $.Values.securityContext -}}
      {{- if $.Values.openshift -}}
      {{- $security = omit $security "runAsUser" "runAsGroup" -}}
      {{- end }}
      securityContext:
        {{- toYaml $security | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/ghapplets/ghapplets.yaml
          subPath: ghapplets.yaml
          readOnly: true
        - name: tmp
          mountPath: /tmp
        - name: data
          mountPath: /var/lib/ghapplets
        {{- if $.Values.applets.volume }}
        - name: applets
          mountPath: /etc/ghapplets/applets
          readOnly: true
        {{- end }}
        {{- range $i, $applet := $.Values.applets.configMaps }}
        - name: applet-{{ $i }}
          mountPath: /etc/ghapplets/applets/{{ $applet.name }}
          readOnly: true
        {{- end }}
        {{- if eq (default "embedded" $secretsConfig.backend) "kubernetes" }}
        - name: secrets
          mountPath: {{ $secretsConfig.path }}
          readOnly: true
        {{- end }}
        {{- with $.Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ $fullname }}-config
    - name: tmp
      emptyDir:
        sizeLimit: {{ $.Values.tmpSizeLimit }}
    {{- if ne $component "serve" }}
    - name: data  # stateless on NATS and PostgreSQL: the metrics of the pod's processes
      emptyDir: {}
    {{- else if not $.Values.serve.persistence.enabled }}
    - name: data  # persistence.enabled is false: the data goes with the pod
      emptyDir: {}
    {{- else if $.Values.serve.persistence.existingClaim }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ $.Values.serve.persistence.existingClaim }}
    {{- end }}
    {{- with $.Values.applets.volume }}
    - name: applets
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- range $i, $applet := $.Values.applets.configMaps }}
    - name: applet-{{ $i }}
      configMap:
        name: {{ default $applet.name $applet.configMap }}
        defaultMode: {{ default 365 $applet.defaultMode }}
        {{- with $applet.items }}
        items:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    {{- end }}
    {{- if eq (default "embedded" $secretsConfig.backend) "kubernetes" }}
    - name: secrets
      {{- toYaml $.Values.secrets.volume | nindent 6 }}
    {{- end }}
    {{- with $.Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
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
