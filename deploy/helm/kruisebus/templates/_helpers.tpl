{{- define "kruisebus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kruisebus.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "kruisebus.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "kruisebus.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The object name of one component: <fullname>-<component>. Call with (list $ "watcher"). */}}
{{- define "kruisebus.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "kruisebus.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component (immutable: no version). Call with (list $ "watcher"). */}}
{{- define "kruisebus.selectorLabels" -}}
{{- $root := index . 0 }}
app.kubernetes.io/name: {{ include "kruisebus.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Every object's labels. Call with (list $ "watcher"). */}}
{{- define "kruisebus.labels" -}}
{{- $root := index . 0 }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kruisebus.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kruisebus
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end }}

{{- define "kruisebus.image" -}}
{{- printf "%s:%s" .Values.manager.image.repository (default .Chart.AppVersion .Values.manager.image.tag) }}
{{- end }}

{{- define "kruisebus.natsUrl" -}}
{{- if .Values.bus.url }}
{{- .Values.bus.url }}
{{- else if .Values.nats.enabled }}
{{- printf "nats://%s-nats.%s.svc:4222" .Release.Name .Release.Namespace }}
{{- else }}
{{- fail "bus.url: set the URL of an existing NATS with JetStream (nats://host:4222), or nats.enabled=true to install one with this release" }}
{{- end }}
{{- end }}

{{/* The environment every service shares. Call with (list $ "watcher"). */}}
{{- define "kruisebus.env" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: NODE_NAME
  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
- name: KRUISEBUS_NATS
  value: {{ include "kruisebus.natsUrl" $root | quote }}
- name: KRUISEBUS_PREFIX
  value: {{ $root.Values.bus.prefix | quote }}
- name: KRUISEBUS_LOG_LEVEL
  value: {{ $root.Values.manager.logLevel | quote }}
- name: KRUISEBUS_METRICS_PORT
  value: {{ $root.Values.metrics.port | quote }}
- name: KRUISEBUS_KUBE_QPS
  value: {{ $root.Values.kube.qps | quote }}
- name: KRUISEBUS_KUBE_BURST
  value: {{ $root.Values.kube.burst | quote }}
- name: KRUISEBUS_STREAM_REPLICAS
  value: {{ $root.Values.bus.streamReplicas | quote }}
{{- if $root.Values.bus.auth.enabled }}
- name: KRUISEBUS_ENSURE_STREAMS
  value: "false"
{{- with (index $root.Values.bus.auth.users $component) }}
- name: KRUISEBUS_NATS_USER
  value: {{ .user | quote }}
- name: KRUISEBUS_NATS_PASSWORD_FILE
  value: /etc/kruisebus/nats/password
{{- end }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "kruisebus-%s" $component | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),k8s.node.name=$(NODE_NAME)%s" (ternary (printf ",%s" $root.Values.otel.resourceAttributes) "" (ne $root.Values.otel.resourceAttributes "")) | quote }}
{{- if $root.Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $root.Values.otel.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
- name: OTEL_TRACES_SAMPLER
  value: {{ $root.Values.otel.sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $root.Values.otel.samplerArg | quote }}
{{- end }}
{{- end }}

{{/* The pod spec of one service. Call with (list $ "watcher" $values-of-component $args). */}}
{{- define "kruisebus.podSpec" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- $cfg := index . 2 }}
{{- $args := index . 3 }}
serviceAccountName: {{ include "kruisebus.componentName" (list $root $component) }}
{{- $rules := $root.Files.Get "files/rbac.yaml" | fromYaml }}
{{- $key := $component }}
{{- if and (eq $component "node-agent") (eq $root.Values.nodeAgent.runtime "cri") }}{{ $key = "node-agent-cri" }}{{ end }}
automountServiceAccountToken: {{ not (empty (get $rules $key)) }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets: {{ toYaml . | nindent 2 }}
{{- end }}
securityContext: {{ toYaml $root.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: 30
containers:
  - name: {{ $component }}
    image: {{ include "kruisebus.image" $root | quote }}
    imagePullPolicy: {{ $root.Values.manager.image.pullPolicy }}
    args: {{ toYaml (concat $args ($cfg.extraArgs | default list)) | nindent 6 }}
    env: {{ include "kruisebus.env" (list $root $component) | nindent 6 }}
    ports:
      - {name: metrics, containerPort: {{ $root.Values.metrics.port }}, protocol: TCP}
      {{- if eq $component "webhook" }}
      - {name: webhook, containerPort: {{ $root.Values.webhook.port }}, protocol: TCP}
      {{- end }}
    startupProbe:
      httpGet: {path: /readyz, port: metrics}
      periodSeconds: 2
      failureThreshold: 60
    readinessProbe:
      httpGet: {path: /readyz, port: metrics}
      periodSeconds: 5
    livenessProbe:
      httpGet: {path: /healthz, port: metrics}
      periodSeconds: 10
      failureThreshold: 3
    resources: {{ toYaml $cfg.resources | nindent 6 }}
    securityContext: {{ toYaml $root.Values.securityContext | nindent 6 }}
    volumeMounts:
      - {name: tmp, mountPath: /tmp}
      {{- if and $root.Values.bus.auth.enabled (hasKey $root.Values.bus.auth.users $component) }}
      - {name: nats-password, mountPath: /etc/kruisebus/nats, readOnly: true}
      {{- end }}
      {{- if and (eq $component "webhook") $root.Values.webhook.certManager.enabled }}
      - {name: webhook-certs, mountPath: /etc/kruisebus/webhook-certs, readOnly: true}
      {{- end }}
      {{- if eq (include "kruisebus.runtime" (list $root $component)) "cri" }}
      - {name: cri-socket, mountPath: {{ $cfg.criSocket }}}
      {{- end }}
volumes:
  - name: tmp
    emptyDir: {}
  {{- if and $root.Values.bus.auth.enabled (hasKey $root.Values.bus.auth.users $component) }}
  {{- $user := index $root.Values.bus.auth.users $component }}
  - name: nats-password
    secret:
      secretName: {{ $user.secretName }}
      items: [{key: {{ $user.secretKey | quote }}, path: password}]
  {{- end }}
  {{- if eq (include "kruisebus.runtime" (list $root $component)) "cri" }}
  - name: cri-socket
    hostPath: {path: {{ $cfg.criSocket }}, type: Socket}
  {{- end }}
  {{- if and (eq $component "webhook") $root.Values.webhook.certManager.enabled }}
  - name: webhook-certs
    secret:
      secretName: {{ include "kruisebus.componentName" (list $root "webhook-cert") }}
  {{- end }}
{{- with $cfg.nodeSelector }}
nodeSelector: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with $cfg.tolerations }}
tolerations: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with $cfg.affinity }}
affinity: {{ toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The container runtime a node service talks to ("" for the others). Call with (list $ "prober"). */}}
{{- define "kruisebus.runtime" -}}
{{- $root := index . 0 }}
{{- if eq (index . 1) "node-agent" }}{{ $root.Values.nodeAgent.runtime }}
{{- else if eq (index . 1) "prober" }}cri
{{- end }}
{{- end }}

{{- define "kruisebus.podAnnotations" -}}
{{- if .Values.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* The services that exist in this release: name -> values. */}}
{{- define "kruisebus.services" -}}
watcher: true
planner: true
executor: true
webhook: {{ .Values.webhook.enabled }}
node-agent: {{ .Values.nodeAgent.enabled }}
prober: {{ .Values.prober.enabled }}
nats-init: {{ .Values.bus.auth.enabled }}
{{- end }}
