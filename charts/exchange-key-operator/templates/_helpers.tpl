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

{{/*
The manager's rules split by scope, for namespace-scoped mode: a Role grants
nothing on cluster-scoped resources, so the rules on those go to a
ClusterRole. Cluster-scoped are the CRDs in crds/ with scope Cluster and the
built-in resources below; anything else is taken as namespaced (e.g.
argoproj.io rollouts). Returns YAML {namespaced: [rules], cluster: [rules]}.
*/}}
{{- define "eko.managerRulesByScope" -}}
{{- $clusterScoped := list "/namespaces" "/nodes" "/persistentvolumes"
  "authentication.k8s.io/tokenreviews" "authorization.k8s.io/subjectaccessreviews"
  "authorization.k8s.io/selfsubjectaccessreviews" "apiextensions.k8s.io/customresourcedefinitions"
  "rbac.authorization.k8s.io/clusterroles" "rbac.authorization.k8s.io/clusterrolebindings"
  "storage.k8s.io/storageclasses" "scheduling.k8s.io/priorityclasses"
  "certificates.k8s.io/certificatesigningrequests"
  "admissionregistration.k8s.io/validatingwebhookconfigurations"
  "admissionregistration.k8s.io/mutatingwebhookconfigurations" }}
{{- range $path, $_ := .Files.Glob "crds/*.yaml" }}
{{- $crd := $.Files.Get $path | fromYaml }}
{{- if eq $crd.spec.scope "Cluster" }}
{{- $clusterScoped = append $clusterScoped (printf "%s/%s" $crd.spec.group $crd.spec.names.plural) }}
{{- end }}
{{- end }}
{{- $namespaced := list }}
{{- $cluster := list }}
{{- range $rule := .Files.Get "files/rbac/manager-rules.yaml" | fromYamlArray }}
{{- if $rule.nonResourceURLs }}
{{- $cluster = append $cluster $rule }}
{{- else }}
{{- $nsResources := list }}
{{- $clusterResources := list }}
{{- range $resource := $rule.resources }}
{{- $base := first (splitList "/" $resource) }}
{{- $isCluster := false }}
{{- range $group := $rule.apiGroups }}
{{- if has (printf "%s/%s" $group $base) $clusterScoped }}
{{- $isCluster = true }}
{{- end }}
{{- end }}
{{- if $isCluster }}
{{- $clusterResources = append $clusterResources $resource }}
{{- else }}
{{- $nsResources = append $nsResources $resource }}
{{- end }}
{{- end }}
{{- if $nsResources }}
{{- $namespaced = append $namespaced (set (deepCopy $rule) "resources" $nsResources) }}
{{- end }}
{{- if $clusterResources }}
{{- $cluster = append $cluster (set (deepCopy $rule) "resources" $clusterResources) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml (dict "namespaced" $namespaced "cluster" $cluster) }}
{{- end }}
