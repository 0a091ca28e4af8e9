{{/* Name of the chart, for labels. */}}
{{- define "edge-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: the release name when it already says edge-operator. */}}
{{- define "edge-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "edge-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edge-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "edge-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "edge-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: edge-operator
{{- end }}

{{- define "edge-operator.serviceAccountName" -}}
{{- default (include "edge-operator.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The user name the API server gives the operator's ServiceAccount. */}}
{{- define "edge-operator.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "edge-operator.serviceAccountName" .) }}
{{- end }}

{{- define "edge-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* CEL: whether the key in the given expression is one of the operator's own node keys. */}}
{{- define "edge-operator.ownKey" -}}
({{ . }}.startsWith("edgeoperator.dev/") || {{ . }} in variables.keys)
{{- end }}

{{/* The provider ClusterRoles of files/ (generated), as a JSON list of objects. */}}
{{- define "edge-operator.providerRoles" -}}
{{- $roles := list }}
{{- range $doc := regexSplit "(?m)^---\\s*$" (.Files.Get "files/provider-clusterroles.yaml") -1 }}
{{- with fromYaml $doc }}{{ $roles = append $roles . }}{{ end }}
{{- end }}
{{- toJson $roles }}
{{- end }}
