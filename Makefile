# tracktrace developer tasks. `make test` is the whole suite (CI runs it).
GO ?= go
FUZZTIME ?= 10s

.PHONY: run test check unit deploy-check fuzz build

run:
	$(GO) run ./cmd/tracktrace serve

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/tracktrace ./cmd/tracktrace

# The whole suite: formatting, vet, every package's tests with the race
# detector (PostgreSQL tests included: they fail under CI=true when the
# server is unreachable), then each fuzz target briefly.
test: check unit deploy-check fuzz

check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

# The deployment files, checked by a module of their own (k8s.io/api, HCL,
# compose-go, buildkit) so that the service's dependencies stay lean.
deploy-check:
	cd deploy/check && $(GO) vet ./... && $(GO) test -count=1 ./...

# Every fuzz target, found in the sources, runs for FUZZTIME; any failure
# (including a package that does not build) fails the suite. A run that ends
# with only "context deadline exceeded" and no failing input is the Go fuzzer
# stopping a busy worker at the deadline, not a finding: it is run again once.
fuzz:
	@set -e; grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do \
	  pkg=$$(dirname "$$f"); \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
	    echo "fuzz $$pkg $$t"; \
	    for try in 1 2; do \
	      if $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) "$$pkg" > .fuzz.log 2>&1; then tail -n 2 .fuzz.log; break; fi; \
	      cat .fuzz.log; \
	      if [ $$try = 2 ] || grep -q 'Failing input written' .fuzz.log || ! grep -q 'context deadline exceeded' .fuzz.log; then rm -f .fuzz.log; exit 1; fi; \
	      echo "fuzz $$pkg $$t: deadline flake, running again"; \
	    done; \
	  done; \
	done; rm -f .fuzz.log
