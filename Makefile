# edge-operator developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=
CLUSTER_DIR ?= $(HOME)/.cache/edge-operator/cluster
KUBECONFIG_LOCAL := $(CLUSTER_DIR)/kubeconfig

.PHONY: help install tools test unit e2e lint generate crds run cluster-up cluster-down demo e2e-kind clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## virtualenv in .venv with the package (editable) and dev tools

tools: ## etcd, kube-apiserver/controller-manager/scheduler, kubectl and kwok, built once into ~/.cache/edge-operator
	hack/build-k8s.sh >/dev/null

test: install tools ## unit and end-to-end tests (e2e on a fresh local control plane, or PYTEST_ARGS=--kubeconfig=PATH)
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install tools ## unit tests only (no cluster; the chart tests use helm and checkov from `make tools`)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

e2e: install tools ## end-to-end tests only
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

lint: install ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check src tests hack
	$(BIN)/ruff format --check src tests hack
	$(BIN)/mypy --strict src tests hack

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

demo: install cluster-up ## local cluster + CRD + operator + examples/basic.yaml, then show the result
	KUBECONFIG=$(KUBECONFIG_LOCAL) hack/demo.sh

e2e-kind: install ## the e2e suite on a kind cluster (needs Docker; cannot run on machines without it)
	hack/e2e-kind.sh

clean: ## remove the virtualenv and caches (not the built Kubernetes binaries)
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
