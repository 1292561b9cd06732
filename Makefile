# sterad — see README.md. `make help` lists the targets.

GO      ?= go
BIN     ?= bin/sterad
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The build date is the commit's, so that a build (and the package) is reproducible.
BUILD_DATE ?= $(shell git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT     := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
FUZZTIME ?= 30s
CRASHFLAGS ?= -crash.cycles 50 -crash.duration 4s
MODELFLAGS ?= -model.checks 40 -model.steps 60 -rapid.shrinktime 2m

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install what the build needs: libusb (for gousb), gdb (gcore, for the non-retention proof) and the Go modules
	@dpkg -s libusb-1.0-0-dev >/dev/null 2>&1 || { $(APT) update -qq && $(APT) install -y -qq libusb-1.0-0-dev pkg-config; }
	@command -v gcore >/dev/null 2>&1 || { $(APT) update -qq && $(APT) install -y -qq gdb; }
	@$(GO) mod download

.PHONY: chromium
chromium: ## install Debian's chromium for the console's browser tests (chromedp)
	@command -v chromium >/dev/null && dpkg -s fonts-noto-cjk >/dev/null 2>&1 || { $(APT) update -qq && $(APT) install -y -qq chromium fonts-noto-cjk; }

.PHONY: build
build: deps ## build bin/sterad
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sterad

.PHONY: test
test: deps chromium ## run the whole test suite (what CI runs)
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -count=1 -timeout 10m -run TestNonRetentionProof ./cmd/sterad/ -args -proof

.PHONY: proof
proof: deps ## the non-retention proof: a day in both card data modes, the running daemon's memory dumped (gcore) and scanned with its data and logs
	$(GO) test -count=1 -timeout 10m -run TestNonRetentionProof -v ./cmd/sterad/ -args -proof

.PHONY: demo
demo: build ## run a scripted front-desk day against the embedded simulators
	$(BIN) demo

.PHONY: run
run: build ## run the daemon in the foreground with embedded simulators
	$(BIN) serve --simulate

.PHONY: bench
bench: build ## benchmarks: codec and store (go test -bench), then the gateway end to end (sterad bench)
	$(GO) test -run '^$$' -bench . -benchmem ./protocol/ ./offline/ ./settlement/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./cmd/sterad/
	$(BIN) bench

.PHONY: fuzz
fuzz: deps ## fuzz the decoders (ISO 8583 unpacker, SFL/1 decoder, store records, the API's key check) for FUZZTIME each
	$(GO) test -run '^$$' -fuzz '^FuzzUnpack$$' -fuzztime $(FUZZTIME) ./protocol/
	$(GO) test -run '^$$' -fuzz '^FuzzDecoder$$' -fuzztime $(FUZZTIME) ./protocol/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeTransaction$$' -fuzztime $(FUZZTIME) ./offline/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeIdempotency$$' -fuzztime $(FUZZTIME) ./offline/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeQueueItem$$' -fuzztime $(FUZZTIME) ./offline/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckKeys$$' -fuzztime $(FUZZTIME) ./api/

.PHONY: crashtest
crashtest: deps ## the long crash test and model run: SIGKILLs, outages, lost answers, unplugged terminal, random action sequences (make test runs short ones)
	$(GO) test -count=1 -timeout 60m -v -run 'TestCrash' ./crashtest/ $(CRASHFLAGS)
	$(GO) test -count=1 -timeout 60m -v -run 'TestModel|TestCounterexample' ./modeltest/ $(MODELFLAGS)

.PHONY: package
package: deps ## the Debian package dist/sterad_*.deb (nfpm), checked by lintian and systemd-analyze (docs/install.md)
	@command -v lintian >/dev/null && command -v systemd-analyze >/dev/null || { $(APT) update -qq && $(APT) install -y -qq lintian systemd; }
	CGO_CFLAGS="-O2 -D_FORTIFY_SOURCE=2" $(GO) build -buildmode=pie -ldflags "-s -w $(LDFLAGS) -extldflags=-Wl,-z,relro,-z,now" -o bin/sterad-deb ./cmd/sterad
	rm -f dist/sterad_*.deb
	$(GO) run ./packaging/cmd/mkdeb -binary bin/sterad-deb -version $(VERSION) -date $(BUILD_DATE) -out dist
	$(GO) test -count=1 -timeout 10m -run TestPackage -v ./packaging/ -args -deb $(CURDIR)/$$(ls dist/sterad_*.deb)

.PHONY: nousb
nousb: ## build without cgo and libusb (USB bulk terminals refused at start-up)
	CGO_ENABLED=0 $(GO) build -tags nousb -ldflags "$(LDFLAGS)" -o $(BIN)-nousb ./cmd/sterad

.PHONY: wirecheck
wirecheck: deps ## decode captured ISO 8583 traffic with Wireshark's dissector (installs tshark)
	@command -v tshark >/dev/null || { $(APT) update -qq && echo "wireshark-common wireshark-common/install-setuid boolean false" | $(SUDO) debconf-set-selections && $(APT) install -y -qq tshark; }
	$(GO) test -count=1 -v -run TestWireCheck ./protocol/

.PHONY: lint
lint: ## go vet and gofmt
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

.PHONY: clean
clean: ## remove build output
	rm -rf bin dist
