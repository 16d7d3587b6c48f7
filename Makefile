# Doppel's developer commands. `make demo` and `make test` do all the set-up on a fresh machine:
# they build, start the throwaway PostgreSQL and Kafka (scripts/infra.sh), and stop what they started.
SHELL := /bin/bash
GO    ?= go
BIN   := bin

.PHONY: help build test test-go fuzz schemathesis demo dev chromium bench bench-scale soak lint fmt docs infra-up infra-down infra-status clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

# `doppel version` and doppel_build_info: the version from git tags (dev without); the commit Go
# stamps, or COMMIT where Go cannot (it does not stamp from a git worktree).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/doppelhq/doppel/internal/buildinfo.version=$(VERSION) -X github.com/doppelhq/doppel/internal/buildinfo.commit=$(COMMIT)

build: ## build every command in cmd/ into bin/ (doppel, advance-sim, doppel-demo, doppel-bench, doppel-soak)
	$(GO) build -buildvcs=auto -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

test: chromium ## start the infrastructure if needed, run every test (and a short fuzz), stop what was started
	bash scripts/with-infra.sh $(MAKE) --no-print-directory test-go fuzz schemathesis

chromium: ## install Debian's Chromium for the console's browser tests, if it is missing
	bash scripts/ensure-chromium.sh

test-go: ## run the Go tests against the running infrastructure (make infra-up first)
	@# go.mod and go.sum must be what `go mod tidy` writes (direct dependencies not marked indirect).
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) vet -tags faults ./internal/harness/faulttest
	$(GO) test -race -count=1 -timeout 10m ./...
	@# The fault tests stop and restart the shared PostgreSQL and Kafka: alone, one at a time. One
	@# of them starts and stops a three-node Kafka of its own (docs/kafka-cluster.md): about 100 s.
	$(GO) test -tags faults -count=1 -p 1 -timeout 15m ./internal/harness/faulttest

fuzz: ## a short run of each fuzz target (seed corpora are in testdata/fuzz)
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEvent$$' -fuzztime 10s ./internal/duplicate
	$(GO) test -run '^$$' -fuzz '^FuzzParseEnvelope$$' -fuzztime 10s ./internal/advance
	$(GO) test -run '^$$' -fuzz '^FuzzTheDecoderReadsAnswersAsTheStandardLibraryDoes$$' -fuzztime 10s ./internal/advance

schemathesis: ## run schemathesis against doppel serve's /openapi.json (needs the infrastructure)
	bash scripts/schemathesis.sh

demo: build ## run the pipeline end to end and print the rings and alerts it found
	bash scripts/with-infra.sh $(BIN)/doppel-demo

dev: build ## the demo left running: prints the console URL, a reviewer and a lead account, an API key and the callback token; Ctrl-C stops it
	bash scripts/dev.sh

bench: build ## throughput, latency and memory benchmark on the real servers; writes docs/benchmarks.md
	bash scripts/bench.sh

# SIZE is how many checks bench-scale generates: the default runs in a few minutes; issue 23's target
# is SIZE=10000000.
SIZE ?= 200000

bench-scale: ## fill a database with SIZE checks of a year's shape, time every read route and console page and the hot path; writes docs/performance.md's scale block
	bash scripts/bench-scale.sh -size $(SIZE)

soak: build ## long fault soak (kill -9, restarts, vendor errors) ending with a ledger; not part of test
	bash scripts/soak.sh

lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

docs: ## regenerate the generated parts of docs/ (configuration reference, dead-letter reasons)
	$(GO) test -count=1 -run '^TestTheConfigurationReferenceIsTheStruct$$' ./internal/config -update-docs
	UPDATE_DOCS=1 $(GO) test -count=1 -run '^TestTheContractsListEveryReason$$' ./internal/deadletter

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

infra-up: ## start PostgreSQL and Kafka (idempotent; DOPPEL_INFRA_BROKERS=3: three Kafka nodes) and write .local/env
	bash scripts/infra.sh up

infra-down: ## stop PostgreSQL and Kafka and remove their data
	bash scripts/infra.sh down

infra-status: ## say whether PostgreSQL and Kafka are up
	bash scripts/infra.sh status

clean: infra-down ## stop the infrastructure and remove build output
	rm -rf $(BIN)
