# mender-agent build, test and install targets. `make help` lists them.

GO        ?= go
PKG       := github.com/mender-agent/mender-agent
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILDTIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.buildTime=$(BUILDTIME)
GOFLAGS_BUILD := -trimpath -ldflags "$(LDFLAGS)"

# Cross targets: GOOS-GOARCH[vGOARM]
CROSS_TARGETS := linux-amd64 linux-arm64 linux-armv5 linux-armv6 linux-armv7 linux-386 linux-riscv64

# Install layout (DESTDIR and prefix as usual).
DESTDIR     ?=
prefix      ?= /usr
bindir      ?= $(prefix)/bin
datadir     ?= $(prefix)/share
sysconfdir  ?= /etc
systemd_unitdir ?= /lib/systemd/system

.PHONY: yocto-mods all build cross run test test-unit test-race test-386 test-tpmsim test-qemu test-qemu-user test-fuzz fuzz deps lint bench install clean help

all: build

help:
	@echo "make build    host binary at bin/mender-agent"
	@echo "make cross    static binaries for $(CROSS_TARGETS) under bin/"
	@echo "make run      demo: private bus + local test server + daemon + consumer"
	@echo "make test     install test tools, lint, then every test tier that runs here"
	@echo "make lint     gofmt, go vet, staticcheck (pinned in go.mod)"
	@echo "make bench    Go benchmarks and comparison report under build/bench"
	@echo "make install  DESTDIR=... prefix=... binary, unit, D-Bus files, example config"

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o bin/mender-agent ./cmd/mender-agent

bin/mender-testserver: FORCE
	CGO_ENABLED=0 $(GO) build -o $@ ./test/cmd/mender-testserver

FORCE:

cross:
	@set -e; for t in $(CROSS_TARGETS); do \
		os=$${t%%-*}; arch=$${t#*-}; arm=""; \
		case $$arch in armv*) arm=$${arch#armv}; arch=arm;; esac; \
		out=bin/$$t/mender-agent; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GO) build $(GOFLAGS_BUILD) -o $$out ./cmd/mender-agent; \
	done
	@scripts/cross-report.sh $(CROSS_TARGETS)

run: build bin/mender-testserver
	scripts/demo.sh

deps:
	scripts/install-deps.sh all

# test runs everything that can run on this machine. Tools are installed
# first and MENDER_AGENT_REQUIRE_TOOLS=1 turns a missing tool into a
# failure instead of a skip.
test: deps lint test-race test-386 test-tpmsim test-fuzz test-qemu test-qemu-user
	@echo "make test: all tiers passed"

test-race:
	MENDER_AGENT_REQUIRE_TOOLS=1 $(GO) test -race -count=1 -timeout 20m ./...

test-unit:
	$(GO) test -count=1 ./...

# 32-bit catches int-size bugs that matter on armv7 devices.
test-386:
	GOARCH=386 CGO_ENABLED=0 $(GO) test -count=1 -timeout 15m $$($(GO) list ./... | grep -v -e /test/e2e)

# The in-process TPM simulator needs cgo; run it when a C compiler exists.
test-tpmsim:
	@if command -v gcc >/dev/null 2>&1; then \
		MENDER_AGENT_REQUIRE_TOOLS=1 CGO_ENABLED=1 $(GO) test -count=1 -tags tpmsimulator ./tpm/...; \
	else echo "test-tpmsim: no C compiler; skipping the simulator tier"; fi

# Every fuzz target, coverage-guided, briefly (make test) or as long as
# FUZZTIME says: make fuzz FUZZTIME=10m.
test-fuzz:
	FUZZTIME=4s scripts/fuzz.sh

fuzz:
	FUZZTIME=$${FUZZTIME:-1m} scripts/fuzz.sh

# Real Linux guests (x86-64 with a TPM, arm64, armv7) boot the agent as a
# service: see test/qemu. Kernels and guest files are cached in build/qemu.
test-qemu:
	scripts/qemu-prepare.sh build/qemu
	MENDER_AGENT_REQUIRE_TOOLS=1 MENDER_AGENT_QEMU_DIR=$(CURDIR)/build/qemu $(GO) test -tags qemu -count=1 -timeout 15m ./test/qemu/

# The module's tests as arm64 and armv7 binaries under qemu-user.
test-qemu-user:
	MENDER_AGENT_REQUIRE_TOOLS=1 test/qemu/qemu-user.sh arm64 armhf

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags tpmsimulator ./tpm/...
	$(GO) vet -tags qemu ./test/qemu/
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags qemu ./test/qemu/
	$(GO) tool staticcheck -tags tpmsimulator ./tpm/...
	$(GO) mod verify >/dev/null

bench: build bin/mender-testserver
	scripts/bench.sh

install: build
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(systemd_unitdir) \
		$(DESTDIR)$(datadir)/dbus-1/system.d $(DESTDIR)$(datadir)/dbus-1/system-services \
		$(DESTDIR)$(datadir)/dbus-1/interfaces \
		$(DESTDIR)$(datadir)/mender/identity $(DESTDIR)$(datadir)/doc/mender-agent/examples
	install -m 0755 bin/mender-agent $(DESTDIR)$(bindir)/mender-agent
	install -m 0644 dist/mender-authd.service $(DESTDIR)$(systemd_unitdir)/mender-authd.service
	install -m 0644 dist/io.mender.AuthenticationManager.conf $(DESTDIR)$(datadir)/dbus-1/system.d/io.mender.AuthenticationManager.conf
	install -m 0644 dist/io.mender.AuthenticationManager.service $(DESTDIR)$(datadir)/dbus-1/system-services/io.mender.AuthenticationManager.service
	install -m 0644 dist/io.mender.Authentication1.xml $(DESTDIR)$(datadir)/dbus-1/interfaces/io.mender.Authentication1.xml
	install -m 0755 identity/mender-device-identity $(DESTDIR)$(datadir)/mender/identity/mender-device-identity
	install -m 0600 dist/mender.conf.example $(DESTDIR)$(datadir)/doc/mender-agent/examples/mender.conf
	install -m 0644 dist/mender-authd-tpm.conf $(DESTDIR)$(datadir)/doc/mender-agent/examples/mender-authd-tpm.conf

# Regenerate the Yocto layer's Go module pins after changing go.mod.
yocto-mods:
	$(GO) test ./yocto -run TestGoModsIncMatchesGoSum -update

clean:
	rm -rf bin build
