{{/* Chart name, cut to the 63 characters a label value allows. */}}
{{- define "heartbeat-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "heartbeat-operator.fullname" -}}
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

{{/* Labels every object carries. */}}
{{- define "heartbeat-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "heartbeat-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: heartbeat-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the operator Pods (never change them: Deployment selectors are immutable). */}}
{{- define "heartbeat-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "heartbeat-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "heartbeat-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "heartbeat-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the metrics Service. */}}
{{- define "heartbeat-operator.metricsName" -}}
{{- printf "%s-metrics" (include "heartbeat-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The namespace of the operator's own objects (DESIGN 10.8.17: a namespace of its own by
default, since the journal Secrets holding job output live there): `namespace`, else the
release's (`helm install -n`), except `default`, which becomes `heartbeat-system`. An
upgrade of a release whose operator already runs in `default` (installed by an older
chart) stays there: moving it would strand its journal Secrets, pings already answered
200, where the new replicas never look (docs/install.md says how to move).
*/}}
{{- define "heartbeat-operator.namespace" -}}
{{- if .Values.namespace }}
{{- .Values.namespace }}
{{- else if ne .Release.Namespace "default" }}
{{- .Release.Namespace }}
{{- else if and .Release.IsUpgrade (lookup "apps/v1" "Deployment" "default" (include "heartbeat-operator.fullname" .)) }}
{{- "default" }}
{{- else }}
{{- "heartbeat-system" }}
{{- end }}
{{- end }}

{{/* The Lease's namespace (DESIGN 9.1): a value, else the operator's namespace. */}}
{{- define "heartbeat-operator.leaseNamespace" -}}
{{- default (include "heartbeat-operator.namespace" .) .Values.leaseNamespace }}
{{- end }}

{{/* The in-cluster address of the ping Service. */}}
{{- define "heartbeat-operator.internalURL" -}}
{{- printf "http://%s.%s.svc:%d" (include "heartbeat-operator.fullname" .) (include "heartbeat-operator.namespace" .) (int .Values.service.port) }}
{{- end }}

{{/* The ping URL base written into token Secrets (DESIGN 9.2): the value, else the ping Service. */}}
{{- define "heartbeat-operator.externalURL" -}}
{{- default (include "heartbeat-operator.internalURL" .) .Values.externalURL | trimSuffix "/" }}
{{- end }}

{{/*
The image reference (issue 17 item 1): `[global.imageRegistry/]repository` then `:tag`
(the chart's appVersion when empty), `@digest` when one is given. The project publishes
no image, so the repository has no default: without it `helm install` stops here with
this sentence instead of deploying Pods that pull a Docker Hub name that isn't ours.
*/}}
{{- define "heartbeat-operator.image" -}}
{{- $repository := required "image.repository is required: the image you built from the Dockerfile and pushed, e.g. --set image.repository=registry.example.com/heartbeat-operator (docs/install.md, section 1)" .Values.image.repository }}
{{- with (.Values.global).imageRegistry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- if .Values.image.tag }}
{{- printf "%s:%s@%s" $repository .Values.image.tag .Values.image.digest }}
{{- else }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- end }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
What the operator does in each namespace it watches (DESIGN 9.17), shared by the
ClusterRole (all namespaces) and the per-namespace Roles (watchNamespaces). Never a
wildcard, never list or watch of Secrets: the operator reads a Secret by name.
*/}}
{{- define "heartbeat-operator.namespacedRules" -}}
# Monitors: watched; created, patched (server-side apply) and deleted for annotated CronJobs.
- apiGroups: ["heartbeat.dev"]
  resources: ["heartbeatmonitors"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Status is replaced whole with the object's resourceVersion (DESIGN 9.3).
- apiGroups: ["heartbeat.dev"]
  resources: ["heartbeatmonitors/status"]
  verbs: ["get", "update", "patch"]
# Token Secrets: read by name, created, and given the url keys (DESIGN 9.9).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
# Annotated CronJobs and their Jobs are watched, never written (DESIGN 9.12).
- apiGroups: ["batch"]
  resources: ["cronjobs", "jobs"]
  verbs: ["get", "list", "watch"]
{{- if .Values.jobExitCodes }}
# A failed Job's Pods are listed once for the exit code (DESIGN 9.11).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
{{- end }}
{{- if .Values.captureLogs }}
# A failed Job's failing container's log tail becomes its fail ping's body (issue 12).
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
{{- end }}
# One Event per transition (DESIGN 9.6), patched while Down instead of a new one (DESIGN
# 10.8.13); listed to read a Job's FailedCreate Events, the cause of a NotStarted slot
# when the Job has no Pod (DESIGN 10.8.3).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "list", "patch"]
{{- end }}

{{/* Cluster-scoped reads kopf needs to watch (DESIGN 9.17), and the pause API's reviews
(issue 16); no Role can grant them. */}}
{{- define "heartbeat-operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- if .Values.pauseApi.enabled }}
# The pause API (issue 16): who holds a caller's token, and may they patch the monitor?
# Both reviews are cluster-scoped; they read nothing and change nothing.
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- end }}
{{- end }}

{{/* The admission webhook's Service (DESIGN 10.4). */}}
{{- define "heartbeat-operator.webhookName" -}}
{{- printf "%s-webhook" (include "heartbeat-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding the webhook's serving pair (generated, or cert-manager's). */}}
{{- define "heartbeat-operator.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "heartbeat-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
