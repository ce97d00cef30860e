#!/usr/bin/env bash
# Sourced by the scripts that build pinned tools from their Go modules.
#
# tool_module DIR MODULE VERSION PACKAGE writes a throw-away module in DIR
# that requires MODULE at VERSION and blank-imports PACKAGE, starting from
# the project's own go.mod. Starting from it matters for a cold build: Go
# caches a compiled package by its source and that of everything below it,
# so a tool that links k8s.io/api, client-go or grpc at the project's
# versions reuses the project's compile of them (and the project reuses the
# tool's): kube-apiserver, helm and controller-gen share several CPU
# minutes of dependencies with the project. The project's go.mod is kept at
# or above the versions these tools require (make tools warns when one
# would build a shared module at another version); where a tool needs a
# newer version, minimal version selection gives it that one.
tool_module() {
  local dir="$1" module="$2" version="$3" pkg="$4" root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  mkdir -p "${dir}"
  sed -e 's|^module .*|module toolbuild|' -e '/^toolchain /d' "${root}/go.mod" >"${dir}/go.mod"
  cp "${root}/go.sum" "${dir}/go.sum"
  (cd "${dir}" && go mod edit -require="${module}@${version}")
  tool_import "${dir}" "${pkg}"
}

# own_tool_module DIR MODULE VERSION PACKAGE: the same with the tool's own
# dependency versions, for a tool that shares little with the project or
# wants exactly what it was released with (etcd's server and grpc).
own_tool_module() {
  local dir="$1" module="$2" version="$3" pkg="$4"
  mkdir -p "${dir}"
  cat >"${dir}/go.mod" <<MOD
module toolbuild

go $(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')

require ${module} ${version}
MOD
  tool_import "${dir}" "${pkg}"
}

# tool_import DIR PACKAGE blank-imports PACKAGE, so that `go mod tidy` keeps
# what it needs.
tool_import() {
  cat >"$1/tools.go" <<GO
//go:build tools

package tools

import _ "$2"
GO
}

# tool_module_tidy DIR PACKAGE resolves DIR's module and warns, on stderr,
# of the modules that give packages both to PACKAGE and to the project at
# different versions: each such module and everything that imports it is
# compiled twice on a cold machine (a warning, not an error: the tool still
# builds). Nothing goes to stdout.
tool_module_tidy() {
  local dir="$1" pkg="$2" root drift
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  (cd "${dir}" && go mod tidy) >&2
  drift="$(join <(cd "${root}" && go list -deps -test -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}' ./... | sort -u) \
                <(cd "${dir}" && go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}' "${pkg}" | sort -u) |
    awk '$2 != $3 {print "  " $1 ": project " $2 ", tool " $3}')"
  [[ -z "${drift}" ]] || echo "${pkg} builds these modules at versions other than the project's (compiled twice on a cold machine):
${drift}" >&2
}
