# Culvert: build, test, lint, catalog, bench and demo for every module of go.work.
# Modules are read from go.work; nothing here lists them by hand.

VERSION    ?= 0.1.0
GO         ?= go
ROOT       := $(CURDIR)
MODULES    := $(shell $(GO) list -m -f '{{.Dir}}' | sed 's|^$(ROOT)/||')
CONNECTORS := $(filter sources/% sinks/%,$(MODULES))
BIN        := $(ROOT)/bin
TOOLS      := $(ROOT)/.tools
LDFLAGS    := -s -w -X github.com/culvert-dev/culvert/common/cli.Version=$(VERSION)
STATICCHECK_VERSION := v0.7.0
ACTIONLINT_VERSION  := v1.7.7
FUZZTIME      ?= 200000x
TEST_FUZZTIME ?= 5000x

export CGO_ENABLED = 0
export PATH := $(TOOLS)/bin:$(PATH)

.PHONY: all build tools services test fuzz lint catalog catalog-check bench demo chaos clean modules modules-json images images-push dockerfiles dist install-check set-version

all: build

modules: ## print the modules found in go.work
	@echo $(MODULES)

modules-json: ## the modules as a JSON array (for the CI matrix)
	@printf '%s\n' $(MODULES) | sed 's/.*/"&"/' | paste -sd, | sed 's/.*/[&]/'

build: ## static binaries of every connector and of culvert in bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./,$(CONNECTORS)) ./catalog/cmd/culvert

tools: ## what the tests need: bats, jq, chromium and the rest of scripts/install-tools.sh (installed with apt when missing)
	@$(ROOT)/scripts/install-tools.sh

services: ## the servers the broker connectors and bus backends test against (installed with apt and started when missing)
	@$(ROOT)/scripts/services.sh rabbitmq mosquitto nats postgres mariadb redis

test: tools services build ## every module's tests (Go and bats), every fuzz target briefly, then the catalog check
	@set -e; for m in $(MODULES); do \
		echo "==> make -C $$m test"; \
		$(MAKE) --no-print-directory -C $$m test ROOT=$(ROOT) VERSION=$(VERSION); \
	done
	@$(ROOT)/scripts/fuzz.sh $(TEST_FUZZTIME)
	@$(MAKE) --no-print-directory catalog-check
	@$(MAKE) --no-print-directory install-check

fuzz: ## every fuzz target (func Fuzz* in a module of go.work), FUZZTIME each (executions, default 200000x; or whole seconds)
	@$(ROOT)/scripts/fuzz.sh $(FUZZTIME)

lint: ## gofmt, go vet, staticcheck and actionlint
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(addsuffix /...,$(addprefix ./,$(MODULES)))
	@test -x $(TOOLS)/bin/staticcheck || GOBIN=$(TOOLS)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck $(addsuffix /...,$(addprefix ./,$(MODULES)))
	@test -x $(TOOLS)/bin/actionlint || GOBIN=$(TOOLS)/bin $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	actionlint

catalog: build ## regenerate catalog/catalog.json, catalog/README.md and the static catalog site catalog/site/
	$(GO) run ./catalog -bin $(BIN) -out catalog

catalog-check: build ## fail when the committed catalog (site included) is stale
	$(GO) run ./catalog -bin $(BIN) -out catalog -check

# The subcommands of scripts/bench that make bench runs after `bench all`
# (scripts/bench's tests check that this names every one).
BENCHES := avro bus commit csv culvert http-sink http-source kafka mqtt nats postgres-cdc protobuf rabbitmq redis retention serve sql-sink sql-source

# Every step runs even when one misses a floor (or fails); make bench then
# names them and fails.
bench: build ## throughput and memory figures, each beside its floor (see README, Performance); fails at the end if one is missed
	@missed=""; \
	step() { name=$$1; shift; echo "==> $$name: $$*"; "$$@" || missed="$$missed $$name"; }; \
	step all $(GO) run ./scripts/bench all -bin $(BIN) -md; \
	step BatchedSends $(GO) test -run '^$$' -bench BatchedSends -benchtime 5000x ./common/client/mqtt; \
	step LongLine $(GO) test -run '^$$' -bench LongLine -benchtime 1x -benchmem ./sources/file-source; \
	for s in $(BENCHES); do \
		step $$s $(GO) run ./scripts/bench $$s -bin $(BIN); \
	done; \
	if [ -n "$$missed" ]; then echo "make bench: missed a floor or failed:$$missed" >&2; exit 1; fi; \
	echo "make bench: every floor met"

demo: build ## the orders example on a fresh embedded bus
	@$(ROOT)/scripts/demo.sh $(BIN)

CHAOS_FLAGS ?= -n 500000 -kills 20 -size 64m

chaos: build ## kill -9, a full disk and a bus server restart under a running pipeline, then 0 lost (root; scripts/chaos.sh, CHAOS_FLAGS)
	@$(ROOT)/scripts/chaos.sh -bin $(BIN) $(CHAOS_FLAGS)

IMAGE_PREFIX ?= culvert
IMAGES_ENV   := VERSION=$(VERSION) BIN=$(BIN) DIST=$(DIST) IMAGE_PREFIX=$(IMAGE_PREFIX)

images: build ## an image per connector, $(IMAGE_PREFIX)/<name>:$(VERSION), with docker or podman (scripts/images.sh)
	@$(IMAGES_ENV) $(ROOT)/scripts/images.sh build $(CONNECTORS)

images-push: build ## build and push the images (IMAGE_PREFIX=ghcr.io/<owner>; PLATFORMS="linux/amd64 linux/arm64" after make dist for multi-arch)
	@$(IMAGES_ENV) $(ROOT)/scripts/images.sh push $(CONNECTORS)

PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64
DIST      := $(ROOT)/dist
CYCLONEDX_GOMOD_VERSION := v1.10.0

dist: ## release files: every connector for $(PLATFORMS), a CycloneDX SBOM per binary, SHA256SUMS (in dist/)
	@test -x $(TOOLS)/bin/cyclonedx-gomod || GOBIN=$(TOOLS)/bin $(GO) install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_GOMOD_VERSION)
	@VERSION=$(VERSION) PLATFORMS="$(PLATFORMS)" DIST=$(DIST) $(ROOT)/scripts/dist.sh $(CONNECTORS)

install-check: ## go install of a connector with GOWORK=off from a local module proxy, as a user installs after a release
	@VERSION=$(VERSION) $(ROOT)/scripts/install-check.sh sources/file-source

set-version: ## require common at v$(VERSION) in every module, and point go.work's replace at it
	@$(ROOT)/scripts/release.sh set-version $(VERSION)

dockerfiles: ## regenerate every connector's Dockerfile from the template in scripts/images.sh
	@$(ROOT)/scripts/images.sh generate $(CONNECTORS)

clean:
	rm -rf $(BIN) $(DIST)
