{{- define "framesift.name" -}}framesift{{- end -}}
{{- define "framesift.fullname" -}}{{ printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "framesift.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "framesift.serviceAccountName" -}}{{ .Values.serviceAccount.name | default (include "framesift.fullname" .) }}{{- end -}}
{{- define "framesift.labels" -}}
app.kubernetes.io/name: {{ include "framesift.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "framesift.selector" -}}
app.kubernetes.io/name: {{ include "framesift.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
