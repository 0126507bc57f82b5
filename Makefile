# tracktrace developer tasks. `make test` is the whole suite (CI runs it).
GO ?= go
FUZZTIME ?= 10s

.PHONY: run test check unit fuzz build

run:
	$(GO) run ./cmd/tracktrace serve

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/tracktrace ./cmd/tracktrace

# The whole suite: formatting, vet, every package's tests with the race
# detector (PostgreSQL tests included: they fail under CI=true when the
# server is unreachable), then each fuzz target briefly.
test: check unit fuzz

check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done
