{{/*
The claim a storage entry mounts: its existingClaim, else <fullname>-<component>.
(dict "root" $ "component" "data" "storage" .Values.storage.data)
*/}}
{{- define "rakuten.claimName" -}}
{{- .storage.existingClaim | default (include "rakuten.componentName" (dict "root" .root "component" .component)) -}}
{{- end -}}

{{/* The Secret of a component: values.secrets.<key>, else <fullname>-<component> */}}
{{- define "rakuten.secretName" -}}
{{- $override := index .root.Values.secrets .key | default "" -}}
{{- $override | default (include "rakuten.componentName" (dict "root" .root "component" .component)) -}}
{{- end -}}
