#!/usr/bin/env bash
# Provides kube-apiserver and etcd for envtest on machines that reach only the
# Go module proxy: setup-envtest downloads prebuilt binaries from a bucket that
# is out of reach, so both are built from their Go modules instead.
#
# Prints the directory to use as KUBEBUILDER_ASSETS on stdout (and nothing
# else there); progress goes to stderr.
#
# Binaries are cached per version under the user cache directory so that a
# fresh clone on the same machine (CI) reuses them, and linked into bin/.
set -euo pipefail

# The project's k8s.io modules are at this version too: kube-apiserver is
# built with the project's dependencies (hack/tool-module.sh), so a cold
# machine compiles k8s.io/api, client-go and the rest once for both.
KUBE_VERSION="${KUBE_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "envtest-assets: $*" >&2; }

# An explicit KUBEBUILDER_ASSETS wins, as with setup-envtest.
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if [[ -x "${KUBEBUILDER_ASSETS}/kube-apiserver" && -x "${KUBEBUILDER_ASSETS}/etcd" ]]; then
    echo "${KUBEBUILDER_ASSETS}"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS} lacks kube-apiserver or etcd; building them instead"
fi

cache="${XDG_CACHE_HOME:-${HOME}/.cache}/exchange-key-operator/envtest"
apiserver="${cache}/kube-apiserver-v${KUBE_VERSION}"
etcd="${cache}/etcd-v${ETCD_VERSION}"
assets="${root}/bin/k8s/${KUBE_VERSION}-linux-$(go env GOARCH)"
mkdir -p "${cache}" "${assets}"

# One builder at a time per cache: parallel `make test` and `make demo` would
# otherwise both spend five minutes building the same binary.
exec 9>"${cache}/.lock"
flock 9

# shellcheck source=hack/tool-module.sh
source "${root}/hack/tool-module.sh"

build_apiserver() {
  local work; work="$(mktemp -d)"
  trap 'rm -rf "${work}"' RETURN
  log "building kube-apiserver v${KUBE_VERSION} from its Go module (about 5 minutes on 2 cores)"
  tool_module "${work}" k8s.io/kubernetes "v${KUBE_VERSION}" k8s.io/kubernetes/cmd/kube-apiserver
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
  # with ./staging; outside its repo each must be replaced with its release.
  local gomod staging_version="v0${KUBE_VERSION#1}"
  gomod="$(cd "${work}" && go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  local replaces
  replaces="$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "${gomod}")"
  [[ -n "${replaces}" ]] || { log "no staging replaces found in ${gomod}"; return 1; }
  for m in ${replaces}; do
    (cd "${work}" && go mod edit -replace "${m}=${m}@${staging_version}")
  done
  tool_module_tidy "${work}" k8s.io/kubernetes/cmd/kube-apiserver
  (cd "${work}" && CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "${KUBE_VERSION}" | cut -d. -f2)" \
      -o "${apiserver}.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2)
  mv "${apiserver}.tmp" "${apiserver}"
}

build_etcd() {
  local work; work="$(mktemp -d)"
  trap 'rm -rf "${work}"' RETURN
  log "building etcd v${ETCD_VERSION} from its Go module (about 30 seconds)"
  # Its own dependency versions: etcd's server is particular about grpc's,
  # and shares little with the project anyway.
  own_tool_module "${work}" go.etcd.io/etcd/server/v3 "v${ETCD_VERSION}" go.etcd.io/etcd/server/v3
  (cd "${work}" && go mod tidy >&2 && \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${etcd}.tmp" go.etcd.io/etcd/server/v3 >&2)
  mv "${etcd}.tmp" "${etcd}"
}

[[ -x "${etcd}" ]] || build_etcd
[[ -x "${apiserver}" ]] || build_apiserver

ln -sf "${apiserver}" "${assets}/kube-apiserver"
ln -sf "${etcd}" "${assets}/etcd"
echo "${assets}"
