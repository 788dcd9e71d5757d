{{/*
Names, labels and shared pieces. Every object is named <fullname>-<component> and labelled with
the app.kubernetes.io set; selectors use name, instance and component only (stable across
upgrades).
*/}}

{{- define "rakuten.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rakuten.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<component>: call with (dict "root" $ "component" "serve") */}}
{{- define "rakuten.componentName" -}}
{{- printf "%s-%s" (include "rakuten.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rakuten.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rakuten.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "rakuten.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rakuten.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: rakuten
{{- end -}}

{{/*
An image reference from values: (dict "root" $ "image" .Values.images.serve). The project's
images are <image.registry>/<repository> (an image's own `registry` key replaces the registry);
a digest, when given, pins the image over the tag.
*/}}
{{- define "rakuten.image" -}}
{{- $registry := ternary .image.registry .root.Values.image.registry (hasKey .image "registry") -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- $ref := ternary .image.repository (printf "%s/%s" $registry .image.repository) (empty $registry) -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $ref .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref $tag -}}
{{- end -}}
{{- end -}}

{{/* The pod-level security context every pod of the chart runs with. */}}
{{- define "rakuten.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.security.uid }}
runAsGroup: {{ .Values.security.uid }}
fsGroup: {{ .Values.security.uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container-level security context: no privilege, no capability, read-only root. */}}
{{- define "rakuten.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* imagePullSecrets, when set */}}
{{- define "rakuten.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The environment every project container shares (x-rakuten-env of docker-compose.yml).
*/}}
{{- define "rakuten.commonEnv" -}}
- name: RAKUTEN_ENVIRONMENT
  value: {{ .Values.environment | quote }}
- name: RAKUTEN_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: MLFLOW_TRACKING_URI
  value: {{ include "rakuten.mlflowUrl" . | quote }}
# the root file system is read-only: libraries' $HOME files go to the /tmp emptyDir
- name: HOME
  value: /tmp
{{- end -}}

{{- define "rakuten.mlflowUrl" -}}
{{- printf "http://%s:%d" (include "rakuten.componentName" (dict "root" . "component" "mlflow")) (int .Values.mlflow.service.port) -}}
{{- end -}}

{{- define "rakuten.pushgatewayUrl" -}}
{{- printf "http://%s:%d" (include "rakuten.componentName" (dict "root" . "component" "pushgateway")) (int .Values.pushgateway.service.port) -}}
{{- end -}}

{{/* postgresql+psycopg://<role>@<host>:<port>/<database>: (dict "root" $ "role" "rakuten_serve" "database" "rakuten") */}}
{{- define "rakuten.databaseUrl" -}}
{{- $pg := .root.Values.postgres -}}
{{- $host := $pg.host | default (include "rakuten.componentName" (dict "root" .root "component" "postgres")) -}}
{{- $url := printf "postgresql+psycopg://%s@%s:%d/%s" .role $host (int $pg.port) .database -}}
{{- if $pg.sslmode -}}{{- $url = printf "%s?sslmode=%s" $url $pg.sslmode -}}{{- end -}}
{{- $url -}}
{{- end -}}

{{/*
A Secret mounted as files, read-only, readable by the pod's user only:
(dict "name" "secrets" "secret" "<Secret name>")
*/}}
{{- define "rakuten.secretVolume" -}}
- name: {{ .name }}
  secret:
    secretName: {{ .secret }}
    defaultMode: 0400
{{- end -}}

{{/* /tmp as a memory-backed or disk emptyDir (the root file system is read-only) */}}
{{- define "rakuten.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .sizeLimit | default "1Gi" }}
{{- end -}}

{{/* Scheduling of a component: nodeSelector, tolerations, affinity (dict "values" .Values.serve) */}}
{{- define "rakuten.scheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
