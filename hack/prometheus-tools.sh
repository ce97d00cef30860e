#!/usr/bin/env bash
# Provides prometheus and promtool for test/monitoring from Debian bookworm's
# prometheus package (both binaries, linked against libc only): seconds,
# where building them from the Prometheus Go module costs minutes of a cold
# CI run.
#
#   hack/prometheus-tools.sh VERSION SHA256 PROMETHEUS_OUT PROMTOOL_OUT
#
# The .deb comes from apt (`apt-get download`, checked against the signed
# package index) where the package lists carry VERSION (a Debian bookworm
# machine, after `apt-get update` if need be), else straight from the
# Debian archive's pool (Ubuntu CI runners, whose lists carry Ubuntu's
# build). Either way its SHA-256 must be SHA256, and it is kept under the
# user cache directory so that a fresh clone on the same machine reuses it.
set -euo pipefail

version="$1" sha256="$2" prometheus_out="$3" promtool_out="$4"
log() { echo "prometheus-tools: $*" >&2; }

for cmd in dpkg-deb sha256sum; do
  command -v "${cmd}" >/dev/null || { log "needs ${cmd} (Debian or Ubuntu); elsewhere put prometheus and promtool ${version%%+*} at ${prometheus_out} and ${promtool_out}"; exit 1; }
done
arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
deb="prometheus_${version}_${arch}.deb"
cache="${XDG_CACHE_HOME:-${HOME}/.cache}/exchange-key-operator/prometheus"
mkdir -p "${cache}"

verified() { [[ -f "$1" ]] && echo "${sha256}  $1" | sha256sum --check --status 2>/dev/null; }

if ! verified "${cache}/${deb}"; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "${tmp}"' EXIT
  start=${SECONDS}
  # apt runs its downloads as _apt, which cannot write to a private temp
  # directory: APT::Sandbox::User=root keeps it quiet about that.
  apt_download() { (cd "${tmp}" && apt-get -q -o APT::Sandbox::User=root download "prometheus=${version}"); }
  if command -v apt-get >/dev/null && { apt_download || { [[ "$(id -u)" == 0 ]] && apt-get -q update >&2 && apt_download; }; }; then
    log "apt-get download prometheus=${version}"
  else
    # The pool path of a Debian package: pool/main/<initial>/<source>/.
    url="https://deb.debian.org/debian/pool/main/p/prometheus/${deb//+/%2b}"
    log "prometheus=${version} is not in the package lists: ${url}"
    curl -fsSL --retry 3 -o "${tmp}/${deb}" "${url}"
  fi
  verified "${tmp}/${deb}" || { log "${deb}: SHA-256 $(sha256sum "${tmp}/${deb}" | cut -d' ' -f1), want ${sha256}"; exit 1; }
  mv "${tmp}/${deb}" "${cache}/${deb}"
  log "fetched ${deb} in $((SECONDS - start))s"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
dpkg-deb -x "${cache}/${deb}" "${tmp}"
mkdir -p "$(dirname "${prometheus_out}")" "$(dirname "${promtool_out}")"
install -m 0755 "${tmp}/usr/bin/prometheus" "${prometheus_out}"
install -m 0755 "${tmp}/usr/bin/promtool" "${promtool_out}"
"${prometheus_out}" --version | sed -n 1p >&2
"${promtool_out}" --version | sed -n 1p >&2
