#!/usr/bin/env bash
# Deployment validation tools, installed into .cache/tools (git-ignored), for tests/deploy/:
#   promtool      checks the Prometheus rules and config (helm/perpledger/files/prometheus)
#                 Debian's `prometheus` package (apt-get download + dpkg -x)
#   helm          lint and template of helm/perpledger   built from the Go module proxy
#   kubeconform   validates the rendered manifests       built from the Go module proxy
#   compose-config  loads docker-compose.yml as Docker Compose does (compose-go's loader: schema, interpolation,
#                 consistency); scripts/compose-config, built with its modules from the Go module proxy
#   k8s-schemas/  Kubernetes JSON schemas for kubeconform, from the PyPI package kubernetes-validate
#                 (no download from GitHub is possible here; its schemas are rewritten to resolve locally)
#
#   scripts/tools.sh            install (idempotent: skipped while this script and scripts/compose-config are unchanged)
#   scripts/tools.sh --force    install again
#
# Why these sources: no package carries helm or kubeconform, the Go module proxy does (`go install`
# of a pinned version); Go's module and build caches (GOMODCACHE, GOCACHE: outside the repository)
# make a second clone on the same machine cost only the link. The three builds and the two downloads
# run in parallel; helm's build is the long pole.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.cache/tools"
STAMP="$TOOLS/stamp"
HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
KUBERNETES_VALIDATE_VERSION=1.37.0
# The Kubernetes version the chart is validated against (a schema set kubernetes-validate carries).
K8S_SCHEMA_VERSION=v1.33.0

log() { echo "tools.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Keyed on this script (the pinned versions) and on the compose-config sources.
want="$(cat "${BASH_SOURCE[0]}" "$ROOT"/scripts/compose-config/{main.go,go.mod,go.sum} | sha256sum | cut -d' ' -f1)"
if [[ "${1:-}" != "--force" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "tools up to date (${TOOLS#"$ROOT"/})"
  exit 0
fi

started_ns="$(date +%s%N)"
command -v go >/dev/null || die "go not found: the Go toolchain is needed to build helm, kubeconform and compose-config"
rm -rf "$TOOLS"
mkdir -p "$TOOLS/bin" "$TOOLS/work"
WORK="$TOOLS/work"

go_install() {  # name, package@version; the binary lands in .cache/tools/bin/<name>
  local name="$1" package="$2" gobin="$WORK/gobin-$1"
  GOBIN="$gobin" GOFLAGS=-buildvcs=false go install "$package" >"$WORK/$name.log" 2>&1 ||
    { tail -n 20 "$WORK/$name.log" >&2; return 1; }
  mv "$gobin"/* "$TOOLS/bin/$name"
}

install_promtool() {
  # apt-get download needs no root, only package lists; a fresh root machine may have none yet.
  (cd "$WORK" && apt-get download -q prometheus >"$WORK/apt.log" 2>&1) ||
    { [[ $EUID -eq 0 ]] && apt-get update -qq >>"$WORK/apt.log" 2>&1 &&
      (cd "$WORK" && apt-get download -q prometheus >>"$WORK/apt.log" 2>&1); } ||
    { tail -n 20 "$WORK/apt.log" >&2; return 1; }
  dpkg -x "$WORK"/prometheus_*.deb "$WORK/prometheus"
  mv "$WORK/prometheus/usr/bin/promtool" "$TOOLS/bin/promtool"
}

install_k8s_schemas() {
  "$ROOT/.venv/bin/pip" download --disable-pip-version-check -q --no-deps -d "$WORK" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log" >&2; return 1; }
  "$ROOT/.venv/bin/python" - "$WORK"/kubernetes_validate-*.whl "$K8S_SCHEMA_VERSION" "$TOOLS/k8s-schemas" <<'EOF'
"""Unpack one strict schema set, laid out as kubeconform's -schema-location template expects.

The package's schemas name each other by URL ($id https://kubernetes.io/api/..., $ref
/api/_definitions.json#...): rewritten to a file next to them, so nothing is fetched."""
import json, pathlib, sys, zipfile

wheel, version, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
prefix = f"kubernetes_validate/kubernetes-json-schema/{version}-local-strict/"
target = out / f"{version}-standalone-strict"
target.mkdir(parents=True)
with zipfile.ZipFile(wheel) as archive:
    names = [n for n in archive.namelist() if n.startswith(prefix) and n.endswith(".json")]
    if not names:
        sys.exit(f"no schemas for {version} in {wheel}")
    for name in names:
        schema = json.loads(archive.read(name).decode().replace('"/api/_definitions.json#', '"_definitions.json#'))
        schema.pop("$id", None)
        (target / name[len(prefix):]).write_text(json.dumps(schema))
EOF
}

pids=()
go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" & pids+=($!)
go_install kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" & pids+=($!)
(cd "$ROOT/scripts/compose-config" && GOFLAGS=-buildvcs=false go build -o "$TOOLS/bin/compose-config" . \
  >"$WORK/compose-config.log" 2>&1 || { tail -n 20 "$WORK/compose-config.log" >&2; exit 1; }) & pids+=($!)
install_promtool & pids+=($!)
install_k8s_schemas & pids+=($!)
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[[ $failed -eq 0 ]] || die "an install failed (logs in ${WORK#"$ROOT"/})"
rm -rf "$WORK"
echo "$want" >"$STAMP"
elapsed_ms=$((($(date +%s%N) - started_ns) / 1000000))
printf 'tools.sh: installed helm, kubeconform, compose-config, promtool and schemas in %d.%03ds\n' \
  $((elapsed_ms / 1000)) $((elapsed_ms % 1000)) >&2
