#!/usr/bin/env bash
# hack/go-tool.sh OUT MODULE VERSION PACKAGE [LDFLAGS]: builds the command PACKAGE of
# MODULE at VERSION into OUT, with the project's dependency versions
# wherever the two share a module (hack/tool-module.sh says why), instead of
# `go install PACKAGE@VERSION`, which would compile k8s.io/api, client-go and
# the rest once more at the tool's own versions. LDFLAGS stamps the version a
# tool reads from its own variable: built in another main module, it cannot
# read it from the build info the way `go install` lets it.
set -euo pipefail
out="$1" module="$2" version="$3" pkg="$4" ldflags="${5:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/tool-module.sh
source "${root}/hack/tool-module.sh"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
tool_module "${work}" "${module}" "${version}" "${pkg}"
tool_module_tidy "${work}" "${pkg}"
mkdir -p "$(dirname "${out}")"
(cd "${work}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w ${ldflags}" -o "${out}.tmp" "${pkg}")
mv "${out}.tmp" "${out}"
