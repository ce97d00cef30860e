{{/* The chart's name, or nameOverride. */}}
{{- define "eko.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: the release name, unless it already holds
the chart's name. With the release exchange-key-operator the objects get the
same names as with kustomize (config/default).
*/}}
{{- define "eko.fullname" -}}
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

{{- define "eko.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "eko.labels" -}}
helm.sh/chart: {{ include "eko.chart" . }}
{{ include "eko.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The manager's pods; the metrics Service and the PDB select them. */}}
{{- define "eko.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eko.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{- define "eko.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controller-manager" (include "eko.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "eko.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
--exchange-rate-limit=EXCHANGE=RPS:BURST,... (cmd/main.go rateLimitFlag);
exchanges in name order.
*/}}
{{- define "eko.exchangeRateLimits" -}}
{{- $items := list }}
{{- range $exchange, $l := .Values.manager.exchangeRateLimits }}
{{- $items = append $items (printf "%s=%s:%d" $exchange (toString $l.requestsPerSecond) (int64 $l.burst)) }}
{{- end }}
{{- join "," $items }}
{{- end }}
