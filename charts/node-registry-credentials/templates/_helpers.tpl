{{/*
Names are fixed, not derived from the release: the agent's rights (docs/agent-rights.json), the
admission policy's username and the broker's Lease name them. One release per cluster.
*/}}
{{- define "nrc.name" -}}node-registry-credentials{{- end -}}

{{- define "nrc.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels on every object. scripts/manifests.ts drops the Helm-only ones for daemonset/base. */}}
{{- define "nrc.labels" -}}
app.kubernetes.io/name: node-registry-credentials
app.kubernetes.io/part-of: node-registry-credentials
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nrc.agentEnabled" -}}
{{- if .Values.daemonset.configurePrivateRegistriesInNodes.enabled }}true{{ end -}}
{{- end -}}

{{/* The secret names the agent reads, in the order its Role lists them. */}}
{{- define "nrc.agentSecrets" -}}
{{- $names := list -}}
{{- with .Values.credentials.secretName }}{{ $names = append $names . }}{{ end -}}
{{- with .Values.credentials.brokerSecretName }}{{ $names = append $names . }}{{ end -}}
{{- toJson $names -}}
{{- end -}}

{{/* containerd's hosts.toml options per registry, as the agent's registry config (TOML). */}}
{{- define "nrc.registryToml" -}}
# Per-registry host options for every node (docs/reference.md, "Registry config").
# A registry listed here gets containerd's <config_path>/<host[:port]>/hosts.toml.
# Rendered from the chart's `registries` value; kustomize users replace it in an overlay
# (configMapGenerator, behavior: replace). A change rolls the agents, which keep the nodes
# configured while they restart.
#
# [registry."registry.example.com:5000"]
# ca = "-----BEGIN CERTIFICATE-----\n..."   # PEM (chart value registries.<host>.ca)
# auth_header = true                       # Basic-auth registries only; never Docker Hub
{{- range $host, $o := .Values.registries }}

[registry.{{ $host | toJson }}]
{{- with $o.ca }}
ca = {{ . | toJson }}
{{- end }}
{{- if hasKey $o "skipVerify" }}
skip_verify = {{ $o.skipVerify }}
{{- end }}
{{- if hasKey $o "authHeader" }}
auth_header = {{ $o.authHeader }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The host directories the agent and the cleanup mount (same paths under /host). */}}
{{- define "nrc.hostMounts" -}}
- name: tmp
  mountPath: /tmp
- name: kubelet
  mountPath: /host/var/lib/kubelet
- name: state
  mountPath: /host/var/lib/node-registry-credentials
- name: etc
  mountPath: /host/etc
- name: root-home
  mountPath: /host/root
{{- end -}}

{{/* A host directory under agent.hostRoot ("/" on every real node). */}}
{{- define "nrc.hostPath" -}}
{{- $root := trimSuffix "/" (index . 0).Values.agent.hostRoot -}}
{{- printf "%s%s" $root (index . 1) -}}
{{- end -}}

{{- define "nrc.hostVolumes" -}}
{{- $ := . -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 16Mi
- name: kubelet
  hostPath:
    path: {{ include "nrc.hostPath" (list $ "/var/lib/kubelet") }}
    type: Directory
- name: state
  hostPath:
    path: {{ include "nrc.hostPath" (list $ "/var/lib/node-registry-credentials") }}
    type: DirectoryOrCreate
- name: etc
  hostPath:
    path: {{ include "nrc.hostPath" (list $ "/etc") }}
    type: Directory
- name: root-home
  hostPath:
    path: {{ include "nrc.hostPath" (list $ "/root") }}
    type: Directory
{{- end -}}

{{/* Root to write root-owned host files; everything else dropped (see daemonset.yaml). */}}
{{- define "nrc.hostWriterSecurityContext" -}}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsUser: 0
runAsGroup: 0
runAsNonRoot: false
capabilities:
  drop: ["ALL"]
  add: ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
{{- end -}}
