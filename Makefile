# exchange-key-operator

CONTROLLER_TOOLS_VERSION ?= v0.23.0
LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
HELM_VERSION ?= v4.3.2
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
# Prometheus and promtool for test/monitoring: Debian bookworm's package
# (both binaries, linked against libc only), unpacked into bin/ under
# versioned names by hack/prometheus-tools.sh. Building them from the
# Prometheus Go module would cost minutes of a cold CI run; the .deb takes
# seconds.
PROMETHEUS_DEB_VERSION ?= 2.42.0+ds-5+b6
# SHA-256 of prometheus_$(PROMETHEUS_DEB_VERSION)_amd64.deb (the hash
# apt-get download --print-uris shows); another architecture sets its own.
PROMETHEUS_DEB_SHA256 ?= 3b0e0255b059a7696bd4a139a4a4eb24d71df067936a61ece5093559cbc7991c
PROMETHEUS ?= $(LOCALBIN)/prometheus-$(PROMETHEUS_DEB_VERSION)
PROMTOOL ?= $(LOCALBIN)/promtool-$(PROMETHEUS_DEB_VERSION)
# golangci-lint v2, built from its Go module (-trimpath only: about 7 CPU
# minutes cold, the largest of the tools).
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# The one version source: the chart's appVersion. The chart's version, the
# image tag, config/'s image tags and the binaries' --version are the same
# (make release-check, test/release).
CHART := charts/exchange-key-operator
VERSION ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' $(CHART)/Chart.yaml)
IMAGE_REPO ?= ghcr.io/keyops-io/exchange-key-operator
IMG ?= $(IMAGE_REPO):$(VERSION)
LDFLAGS := -X github.com/keyops-io/exchange-key-operator/internal/operator.Version=$(VERSION)
# Go test flags; FUZZTIME bounds the short fuzz runs in `make test`.
# -vet=off: make lint (a prerequisite of make test) runs go vet's analyzers
# through golangci-lint's govet on every package, test files and the faults
# tag included; go test's own vet would analyse every dependency once more
# (about 2.5 CPU minutes on a cold machine).
GOTESTFLAGS ?= -count=1 -vet=off -timeout 30m
FUZZTIME ?= 3s
# Go test flags for `make test-faults` (about 2 minutes; the bound is for a
# wedged control plane).
FAULTS_TESTFLAGS ?= -count=1 -vet=off -timeout 15m -v
# N for `make bench` (1000; 10000 behind BENCH_N=10000).
BENCH_N ?= 1000
# Managers for the benchmark's shard phase (BENCH_SHARDS=2: two installs with
# disjoint --key-selector against the one-install Enforce figure).
BENCH_SHARDS ?= 1
# Length of `make soak` (30m; e.g. SOAK_DURATION=6m for a quick look).
SOAK_DURATION ?= 30m
# The ccxt conformance test's Node side; package-lock.json pins ccxt.
CCXT_DIR := internal/exchange/testdata/ccxt

# Every go command make runs builds the way the image does (static, paths
# trimmed), so tests, vet, lint and the image's linux/amd64 build share one
# compile of the dependencies in the build cache instead of three (a cold CI
# run pays for each). A GOFLAGS or CGO_ENABLED of your own wins.
export CGO_ENABLED ?= 0
export GOFLAGS ?= -trimpath

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	hack/sync-chart.sh

.PHONY: generate
generate: controller-gen ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: fmt
fmt: ## go fmt
	go fmt ./...

.PHONY: vet
vet: ## go vet
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Lint the Go code with golangci-lint (.golangci.yml: kubebuilder v4's linters; built from its Go module into bin/).
	$(GOLANGCI_LINT) run ./...
$(GOLANGCI_LINT):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install -trimpath -ldflags "-s -w" github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $(GOLANGCI_LINT)

.PHONY: ccxt-deps
ccxt-deps: node-check $(CCXT_DIR)/node_modules/.package-lock.json ## Install the pinned ccxt for the conformance test (npm ci; needs Node.js 20+).

.PHONY: node-check
node-check: ## Fail with one clear line when Node.js 20+ (the ccxt oracle of make test) is missing.
	@command -v node >/dev/null 2>&1 || { echo "make test needs Node.js 20 or newer (the conformance test checks every request against ccxt from npm): install Node.js, then run make test again"; exit 1; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || { echo "make test needs Node.js 20 or newer, found $$(node --version): upgrade Node.js, then run make test again"; exit 1; }

# npm ci writes node_modules/.package-lock.json last, so it marks a complete
# install of the current lockfile. Install scripts are not run: the signing
# code needs none (ccxt's only prints a banner, bufferutil is an optional
# native speed-up for websockets).
$(CCXT_DIR)/node_modules/.package-lock.json: $(CCXT_DIR)/package.json $(CCXT_DIR)/package-lock.json
	cd $(CCXT_DIR) && npm ci --no-audit --no-fund --ignore-scripts

.PHONY: test
test: manifests generate lint ccxt-deps helm actionlint prometheus-tools ## Run every test (lint, unit, fuzz seeds plus a short fuzz run, envtest integration, the Helm chart, the workflows, alert rules and a real Prometheus).
	@[ -z "$$CI" ] || git diff --quiet -- config/crd config/rbac api charts 2>/dev/null || { echo "generated files are out of date: run 'make manifests generate' and commit"; git --no-pager diff --stat -- config/crd config/rbac api charts; exit 1; }
	@assets="$$(hack/envtest-assets.sh)" && export KUBEBUILDER_ASSETS="$$assets" HELM="$(HELM)" PROMETHEUS="$(PROMETHEUS)" PROMTOOL="$(PROMTOOL)" && \
		go test $(GOTESTFLAGS) ./...
	@hack/fuzz.sh $(FUZZTIME)

.PHONY: test-faults
test-faults: ## Fault scenarios (test/faults): API server restart, leader kill and handover, repeated kills, write conflicts, the manager killed at each issuance step; FAULTS_ARTIFACTS=DIR keeps the logs.
	@assets="$$(hack/envtest-assets.sh)" && export KUBEBUILDER_ASSETS="$$assets" && \
		go test -tags faults $(FAULTS_TESTFLAGS) ./test/faults/

.PHONY: test-chart
test-chart: manifests helm ## Only the Helm chart's tests (test/chart: lint, renderings, schema, dry runs on envtest, in step with config/).
	@assets="$$(hack/envtest-assets.sh)" && export KUBEBUILDER_ASSETS="$$assets" HELM="$(HELM)" && \
		go test $(GOTESTFLAGS) ./test/chart/...

.PHONY: test-monitoring
test-monitoring: prometheus-tools ## Only the monitoring tests (test/monitoring: promtool rule tests, a real Prometheus scraping the manager).
	@assets="$$(hack/envtest-assets.sh)" && export KUBEBUILDER_ASSETS="$$assets" PROMETHEUS="$(PROMETHEUS)" PROMTOOL="$(PROMTOOL)" && \
		go test $(GOTESTFLAGS) -v ./test/monitoring/...

.PHONY: envtest
envtest: ## Build (or reuse) kube-apiserver and etcd for envtest; prints KUBEBUILDER_ASSETS.
	@hack/envtest-assets.sh

.PHONY: tools
tools: envtest-assets actionlint $(GOLANGCI_LINT) prometheus-tools ccxt-deps ## Fetch or build every pinned tool, envtest's kube-apiserver and etcd included; `make -j4 tools` overlaps their downloads and builds (.ci/run does).
	@# After kube-apiserver: they link the k8s.io modules it has just
	@# compiled at the same versions (hack/tool-module.sh), where building
	@# beside it would compile them a second time in parallel.
	@$(MAKE) --no-print-directory controller-gen helm

# The longest build (kube-apiserver) first, so that -j starts it at once.
.PHONY: envtest-assets
envtest-assets:
	@hack/envtest-assets.sh >/dev/null

##@ Build

.PHONY: build
build: ## Build the manager, the exchange simulator and the kubectl plugin (kubectl-eak) into bin/.
	go build -ldflags "$(LDFLAGS)" -o bin/manager ./cmd
	go build -ldflags "$(LDFLAGS)" -o bin/exchange-simulator ./cmd/exchange-simulator
	go build -ldflags "-X github.com/keyops-io/exchange-key-operator/internal/cli.Version=$(VERSION)" -o bin/kubectl-eak ./cmd/kubectl-eak

.PHONY: run
run: ## Run the manager against the current kubeconfig.
	go run -ldflags "$(LDFLAGS)" ./cmd

.PHONY: demo
demo: ## Local control plane + exchange simulator + operator + samples; prints the result. DEMO_KEEP=1 keeps it running.
	@assets="$$(hack/envtest-assets.sh)" && export KUBEBUILDER_ASSETS="$$assets" && \
		go run ./hack/demo $(if $(DEMO_KEEP),--keep,)

.PHONY: bench
bench: ## Scale benchmark (BENCH_N=1000 default; BENCH_N=10000 for the large run).
	@assets="$$(hack/envtest-assets.sh)" && export KUBEBUILDER_ASSETS="$$assets" && \
		go run ./hack/bench --n $(BENCH_N) --shards $(BENCH_SHARDS)

.PHONY: soak
soak: ## Soak test: 1,000 keys revalidated every minute under faults, edits and rotations for SOAK_DURATION (30m); fails on growth or a wrong probe cadence.
	@assets="$$(hack/envtest-assets.sh)" && export KUBEBUILDER_ASSETS="$$assets" && \
		go run ./hack/bench --n 1000 --soak $(SOAK_DURATION)

##@ Deployment

.PHONY: install
install: manifests ## Install the CRD into the cluster of the current kubeconfig.
	kubectl apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRD.
	kubectl delete -k config/crd

.PHONY: docker-build
docker-build: ## Build the manager image IMG (needs a container engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: deploy
deploy: manifests ## Deploy the operator (config/default) with image IMG.
	kubectl kustomize config/default | sed 's|$(IMAGE_REPO):$(VERSION)|$(IMG)|' | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the operator.
	kubectl delete -k config/default

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	hack/go-tool.sh $(CONTROLLER_GEN) sigs.k8s.io/controller-tools $(CONTROLLER_TOOLS_VERSION) sigs.k8s.io/controller-tools/cmd/controller-gen \
		"-X sigs.k8s.io/controller-tools/pkg/version.version=$(CONTROLLER_TOOLS_VERSION)"

.PHONY: helm
helm: $(HELM) ## Build (or reuse) helm from its Go module into bin/.
$(HELM):
	@mkdir -p $(LOCALBIN)
	hack/go-tool.sh $(HELM) helm.sh/helm/$(word 1,$(subst ., ,$(HELM_VERSION))) $(HELM_VERSION) helm.sh/helm/$(word 1,$(subst ., ,$(HELM_VERSION)))/cmd/helm \
		"-X helm.sh/helm/$(word 1,$(subst ., ,$(HELM_VERSION)))/internal/version.version=$(HELM_VERSION)"

.PHONY: prometheus-tools
prometheus-tools: $(PROMETHEUS) $(PROMTOOL) ## Fetch (or reuse) prometheus and promtool from Debian's pinned package into bin/.
# One .deb gives both binaries (a grouped target).
$(PROMETHEUS) $(PROMTOOL) &:
	hack/prometheus-tools.sh "$(PROMETHEUS_DEB_VERSION)" "$(PROMETHEUS_DEB_SHA256)" "$(PROMETHEUS)" "$(PROMTOOL)"

.PHONY: print-prometheus-tools
print-prometheus-tools: prometheus-tools ## Print the paths of prometheus and promtool (for running test/monitoring by hand).
	@echo PROMETHEUS=$(PROMETHEUS) PROMTOOL=$(PROMTOOL)

##@ Release (image, versions, workflows)

ACTIONLINT_VERSION ?= v1.7.12
ACTIONLINT ?= $(LOCALBIN)/actionlint-$(ACTIONLINT_VERSION)
# The image's labels and created time: the commit and its time, so that the
# same commit builds the same digests.
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
# vX.Y.Z when checking a release tag (release.yml sets it).
RELEASE_TAG ?=

.PHONY: image
image: ## Build the manager's multi-arch OCI image (no container engine) into bin/image/: oci/ (layout), exchange-key-operator.oci.tar, docker/linux-ARCH.tar.
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) go run ./hack/image --version "$(VERSION)" --ref "$(IMG)" \
		--revision "$(REVISION)" --platforms "$(IMAGE_PLATFORMS)" --out bin/image

.PHONY: release-check
release-check: ## Check that the version sources agree: Chart.yaml version and appVersion, config/ image tags, CHANGELOG, `manager --version` (RELEASE_TAG=vX.Y.Z: also the tag).
	@go build -ldflags "$(LDFLAGS)" -o bin/manager ./cmd
	@v="$$(bin/manager --version)" && [ "$$v" = "$(VERSION)" ] || { echo "bin/manager --version prints '$$v', want the chart's appVersion $(VERSION)"; exit 1; }
	@RELEASE_TAG="$(RELEASE_TAG)" go test -count=1 -run 'TestVersion' ./test/release/

.PHONY: actionlint
actionlint: $(ACTIONLINT) ## Lint .github/workflows with actionlint (built from its Go module into bin/).
	$(ACTIONLINT)
$(ACTIONLINT):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install -ldflags "-s -w" github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	mv $(LOCALBIN)/actionlint $(ACTIONLINT)

.PHONY: chart
chart: helm ## Package the Helm chart into bin/chart/ (release.yml pushes it to an OCI registry).
	@mkdir -p bin/chart
	$(HELM) package $(CHART) -d bin/chart

.PHONY: print-helm
print-helm: helm ## Print the path of the helm that `make helm` built.
	@echo $(HELM)
