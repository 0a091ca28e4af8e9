# edge-operator developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=
BENCH_ARGS ?=
CLUSTER_DIR ?= $(HOME)/.cache/edge-operator/cluster
KUBECONFIG_LOCAL := $(CLUSTER_DIR)/kubeconfig
LAB_DIR ?= $(HOME)/.cache/edge-operator/lab

.PHONY: help install tools lab-tools test unit e2e dataplane conformance bench lint generate crds run cluster-up cluster-down lab-up lab-down demo e2e-kind clean image dockerfile lock chart-package release-notes release-check

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## virtualenv in .venv with the package (editable) and dev tools

tools: ## etcd, kube-apiserver/controller-manager/scheduler, kubectl, kwok, the Gateway API and Envoy Gateway CRDs, built or fetched once into ~/.cache/edge-operator
	hack/build-k8s.sh >/dev/null
	hack/build-actionlint.sh >/dev/null
	python3 hack/gateway_api.py manifest >/dev/null
	python3 hack/envoy_gateway.py manifest >/dev/null

lab-tools: tools ## what the lab runs (as root): Debian packages, kubelet, kube-proxy, Traefik, echo, the Gateway API conformance suite, Envoy Gateway and Envoy; skipped where the lab cannot run
	$(PYTHON) hack/lab build --if-possible

test: install tools lab-tools ## unit, end-to-end and dataplane tests (e2e on a fresh local control plane; dataplane in a fresh lab)
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install tools ## unit tests only (no cluster; the chart tests use helm and checkov from `make tools`)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

e2e: install tools ## end-to-end tests only
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

dataplane: install lab-tools ## dataplane tests only: real nodes, pods and packets (root)
	$(BIN)/pytest tests/dataplane $(PYTEST_ARGS)

GATEWAY_API_VERSION := $(shell sed -n 's/^GATEWAY_API_VERSION=//p' hack/versions.env)
CONFORMANCE_REPORT ?= $(CURDIR)/conformance/gateway-api-$(GATEWAY_API_VERSION)/edge-operator-traefik-report.yaml

conformance: install lab-tools ## (root) the Gateway API conformance suite (GATEWAY-HTTP) in a fresh lab against an EdgeGateway's class; writes conformance/, prints its time
	EDGE_OPERATOR_CONFORMANCE_REPORT=$(CONFORMANCE_REPORT) $(BIN)/pytest tests/dataplane/test_conformance.py -s $(PYTEST_ARGS)

bench: install tools ## benchmark on its own control plane: N kwok nodes, G gateways, one table (BENCH_ARGS='--nodes 5000')
	$(BIN)/python hack/bench.py $(BENCH_ARGS)

lint: install ## ruff (lint + format check), mypy --strict, gofmt/go vet of the lab's Go programs, actionlint of .github/workflows
	$(BIN)/ruff check src tests hack
	$(BIN)/ruff format --check src tests hack
	$(BIN)/mypy --strict src tests hack
	test -z "$$(gofmt -l hack/lab)" || { gofmt -l hack/lab; exit 1; }
	cd hack/lab && go vet ./...
	"$$(hack/build-actionlint.sh)/actionlint" .github/workflows/*.yml

CHART := deploy/helm/edge-operator

generate: install tools ## regenerate crds/, the chart's files/ and deploy/manifests/ from the code
	$(BIN)/edge-operator crd --output-dir crds
	$(BIN)/edge-operator crd --output-dir $(CHART)/files
	$(BIN)/edge-operator provider-rbac --output $(CHART)/files/provider-clusterroles.yaml
	mkdir -p $(CHART)/files/monitoring
	cp deploy/monitoring/alerts.yaml $(CHART)/files/monitoring/alerts.yaml
	cp deploy/monitoring/edge-operator-dashboard.json $(CHART)/files/monitoring/edge-operator-dashboard.json
	$(BIN)/python hack/chart.py manifests --output deploy/manifests/install.yaml

crds: generate ## same as generate

run: install ## run the operator against the current kubeconfig
	$(BIN)/edge-operator run

cluster-up: tools ## start the local control plane with kwok nodes (idempotent)
	$(PYTHON) hack/localcluster.py up --dir $(CLUSTER_DIR)

cluster-down: ## stop the local control plane and remove its state
	$(PYTHON) hack/localcluster.py down --dir $(CLUSTER_DIR)

lab-up: tools ## (root) the lab: control plane, real nodes, load balancer, clients, CDN (restarts it if up)
	$(PYTHON) hack/lab up --dir $(LAB_DIR)

lab-down: ## stop the lab and remove everything it made (namespaces, mounts, cgroups, state)
	$(PYTHON) hack/lab down --dir $(LAB_DIR)

demo: install tools ## the lab (or kwok nodes where it cannot run) + chart + operator + examples/basic.yaml + a real request
	CLUSTER_DIR=$(CLUSTER_DIR) LAB_DIR=$(LAB_DIR) hack/demo.sh

ARCH ?= amd64

image: install ## the operator's OCI image (no Docker: mmdebstrap + pip + hack/image.py) and its SBOM in dist/; prints digest and size
	@command -v mmdebstrap >/dev/null || { [ "$$(id -u)" -eq 0 ] && apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends mmdebstrap; }
	$(BIN)/python hack/image.py build --arch $(ARCH) --output dist

dockerfile: install ## regenerate the Dockerfile from hack/image.py's description of the image
	$(BIN)/python hack/image.py dockerfile > Dockerfile

lock: install ## re-resolve hack/requirements.lock (the image's Python dependencies, with hashes) from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu --no-header --custom-compile-command "make lock" \
	  -o hack/requirements.lock

e2e-kind: install ## the e2e suite on a kind cluster (needs Docker; cannot run on machines without it)
	hack/e2e-kind.sh

# The release (.github/workflows/release.yml runs these; VERSION is the tag without its v).
chart-package: tools ## the chart as dist/edge-operator-VERSION.tgz (helm package, with the helm of `make tools`)
	@mkdir -p dist
	. hack/versions.env && "$${EDGE_OPERATOR_CACHE:-$$HOME/.cache/edge-operator}/helm-$$HELM_VERSION/bin/helm" \
	  package $(CHART) --destination dist

release-notes: ## print CHANGELOG.md's section of VERSION (default: pyproject.toml's version); fails if it has none
	@$(PYTHON) hack/release_notes.py notes $(if $(VERSION),--version '$(VERSION)')

release-check: ## fail unless VERSION equals pyproject.toml's version and Chart.yaml's version and appVersion
	$(PYTHON) hack/release_notes.py check $(if $(VERSION),--version '$(VERSION)')

clean: ## remove the virtualenv and caches (not the built Kubernetes binaries)
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
