{{/* Names and labels, as `helm create` makes them. */}}
{{- define "s3-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "s3-exporter.fullname" -}}
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

{{- define "s3-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "s3-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "s3-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "s3-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ include "s3-exporter.imageVersion" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: prowler
{{- end }}

{{- define "s3-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "s3-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The tag shown in labels: the tag, else the chart's appVersion. */}}
{{- define "s3-exporter.imageVersion" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* repository@digest when a digest is given, else repository:tag. */}}
{{- define "s3-exporter.image" -}}
{{- with .Values.image.digest }}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" .) }}
{{- fail (printf "image.digest %q is not sha256:<64 hex digits>" .) }}
{{- end }}
{{- printf "%s@%s" $.Values.image.repository . }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "s3-exporter.imageVersion" .) }}
{{- end }}
{{- end }}

{{/* IfNotPresent for a fixed tag or a digest, Always for "latest". */}}
{{- define "s3-exporter.pullPolicy" -}}
{{- if .Values.image.pullPolicy }}
{{- .Values.image.pullPolicy }}
{{- else if and (not .Values.image.digest) (eq (include "s3-exporter.imageVersion" .) "latest") }}
{{- "Always" }}
{{- else }}
{{- "IfNotPresent" }}
{{- end }}
{{- end }}

{{/*
GOMEMLIMIT: goMemLimit.value, else goMemLimit.ratio of the memory limit in
MiB. Kubernetes quantities: plain bytes, k/M/G/T, Ki/Mi/Gi/Ti. Empty when
there is no memory limit.
*/}}
{{- define "s3-exporter.goMemLimit" -}}
{{- if .Values.goMemLimit.value }}
{{- .Values.goMemLimit.value }}
{{- else }}
{{- $limit := "" }}
{{- with .Values.resources }}{{- with .limits }}{{- $limit = toString (default "" .memory) }}{{- end }}{{- end }}
{{- if $limit }}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $limit }}
{{- $unit := trimPrefix $num $limit }}
{{- $mult := dict "" 1.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 }}
{{- if or (not $num) (not (hasKey $mult $unit)) }}
{{- fail (printf "resources.limits.memory %q: not a quantity this chart understands (use Mi or Gi)" $limit) }}
{{- end }}
{{- $bytes := mulf (float64 $num) (get $mult $unit) }}
{{- printf "%dMiB" (int64 (floor (divf (mulf $bytes (float64 .Values.goMemLimit.ratio)) 1048576.0))) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The scans stream: the upper-cased subject prefix + _SCANS. */}}
{{- define "s3-exporter.scansStream" -}}
{{- printf "%s_SCANS" (upper (default "prowler" (get .Values.config "S3EXPORTER_SUBJECT_PREFIX"))) }}
{{- end }}

{{- define "s3-exporter.consumerName" -}}
{{- default "s3-exporter" (get .Values.config "S3EXPORTER_CONSUMER_NAME") }}
{{- end }}
