# newtsim: the two commands a fresh machine needs are `make run` and `make test`.
# Both install what they need first (Debian packages through apt-get as root,
# Go modules through the module proxy).

GO        ?= go
BIN       := bin/newtsim
PKGS      := ./...
# Debian packages the run and the tests need.
DEB_PKGS  := prometheus iproute2 procps util-linux iputils-ping netcat-openbsd socat tshark curl python3 lighttpd wrk nghttp2-client nmap hping3 python3-scapy libpcap0.8 nftables
FUZZTIME  ?= 5s

.PHONY: all build run test test-bare deps vet unit race fuzz bench results clean

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/newtsim

# deps installs what is missing; it prints what it installs and fails loudly
# when it cannot.
deps:
	@scripts/deps.sh $(DEB_PKGS)
	$(GO) mod download

# The main job's tables are also written under results/latest/ (not part of
# the repository; results/ holds the recorded runs).
run: deps build
	$(BIN) run --results results/latest

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

# The whole suite: vet, every test under the race detector (the cross-process
# tests run real processes), then each fuzz target briefly.
test: deps vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	@scripts/fuzz.sh $(FUZZTIME)

# The end-to-end tests that exist to show real Linux programs working with
# the simulated host, each with the programs it runs (docs/TESTING.md; the
# test TestRealToolTestsListed keeps this list, the docs and the tests'
# needTools calls agreeing). Every other test plays Linux's side from Go.
REAL_TOOL_TESTS := TestUpApp TestPrometheusScrapesEveryServer TestPrometheusExample TestLinuxPingThroughStack \
	TestNICCapture TestLoadGeneratorsAgainstSimulatedHost TestHostilePeers TestConnectRejectedByLinuxFirewall \
	TestTSOThroughStack

# test-bare proves a machine with nothing installed runs the end-to-end
# suite: a static newtsim and static test binaries (sim/netns, nic/tap,
# sim/launch), run with no environment and PATH an empty directory (no ip,
# curl, socat, nc, ping, go), all but REAL_TOOL_TESTS. 4 to 6 minutes on
# the 2-CPU development machine; not part of `make test`, which runs the
# same tests with the tools installed.
BARE    := bin/bare
empty   :=
space   := $(empty) $(empty)
test-bare:
	@mkdir -p $(BARE)/empty-path
	CGO_ENABLED=0 $(GO) build -o $(BARE)/newtsim ./cmd/newtsim
	CGO_ENABLED=0 $(GO) test -c -o $(BARE)/launch.test ./sim/launch
	CGO_ENABLED=0 $(GO) test -c -o $(BARE)/netns.test ./sim/netns
	CGO_ENABLED=0 $(GO) test -c -o $(BARE)/tap.test ./nic/tap
	@for b in newtsim launch.test netns.test tap.test; do \
		$(GO) version -m $(BARE)/$$b | grep -q 'CGO_ENABLED=0' || { echo "$$b is not static"; exit 1; }; done
	cd sim/netns && env -i PATH=$(abspath $(BARE)/empty-path) $(abspath $(BARE)/netns.test) -test.count=1
	cd nic/tap && env -i PATH=$(abspath $(BARE)/empty-path) $(abspath $(BARE)/tap.test) -test.count=1
	cd sim/launch && env -i PATH=$(abspath $(BARE)/empty-path) NEWTSIM_BIN=$(abspath $(BARE)/newtsim) \
		$(abspath $(BARE)/launch.test) -test.count=1 -test.timeout=20m -test.v $(BARE_FLAGS) \
		-test.skip='^($(subst $(space),|,$(REAL_TOOL_TESTS)))$$'

bench: build
	$(BIN) bench ipc

# results regenerates every table of results/ (ipc, udp, tcp, eagain, http,
# http-remote, faults), each as JSON, Markdown and an SVG chart with its spread
# and the machine and commit, the HTTP matrices measured REPEAT times over.
# Compare with the recorded ones first: RESULTS=/tmp/r make results, then
# newtsim compare results/ipc.json /tmp/r/ipc.json.
REPEAT  ?= 3
RESULTS ?= results
results: deps build
	$(BIN) bench all --out $(RESULTS) --repeat $(REPEAT)

clean:
	rm -rf bin
