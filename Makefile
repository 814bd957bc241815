# MQTTER build, test, demo, benchmark and fuzz targets.
# Needs only Go; Debian packages (gcc for -race, mosquitto-clients for the
# tests of plain MQTT clients, mosquitto for the bench) are
# installed with apt-get when missing and running as root.

GO       ?= go
GOFMT    ?= $(shell $(GO) env GOROOT)/bin/gofmt
FUZZTIME ?= 30s
# Extra flags for mqbench, e.g. make bench BENCHFLAGS='--only latency --n 2000'.
BENCHFLAGS ?=

.PHONY: all build test fmt-check vet demo bench bench-quick baremochi fuzz faults clean

all: build

build:
	$(GO) build -o bin/mqtter ./cmd/mqtter

# test builds first so end-to-end tests find bin/mqtter (also given to them as
# $MQTTER_BIN). -race needs cgo and a C compiler: installed when possible,
# otherwise the tests run without it and say so.
test: build fmt-check vet
	@if [ "$$($(GO) env CGO_ENABLED)" != 1 ]; then ./.ci/apt-install gcc libc6-dev || true; fi; \
	command -v mosquitto_sub >/dev/null 2>&1 || ./.ci/apt-install mosquitto-clients || \
		echo "note: no mosquitto clients, so their tests skip (apt-get install -y mosquitto-clients)"; \
	command -v iptables >/dev/null 2>&1 || ./.ci/apt-install iptables || \
		echo "note: no iptables, so the NAT tests skip (apt-get install -y iptables)"; \
	race=-race; \
	if [ "$$($(GO) env CGO_ENABLED)" != 1 ]; then \
		race=; echo "note: no C compiler, so no race detector (apt-get install -y gcc)"; \
	fi; \
	echo "$(GO) test $$race -count=1 -timeout 20m ./..."; \
	MQTTER_BIN="$(CURDIR)/bin/mqtter" $(GO) test $$race -count=1 -timeout 20m ./...

fmt-check:
	@files=$$(find . -name '*.go' -not -path './.*' -not -path '*/testdata/*' | xargs -r $(GOFMT) -l); \
	if [ -n "$$files" ]; then echo "gofmt needed on:"; echo "$$files"; exit 1; fi

vet:
	$(GO) vet ./...

demo:
	$(GO) run ./cmd/mqtter demo

baremochi:
	$(GO) build -o bin/baremochi ./bench/cmd/baremochi

# bench compares the server with Mosquitto and a bare mochi broker on
# loopback, then two nodes (direct, through the server) with a raw libp2p
# echo (nodebench), then a thing's commands and a rule chain beside a
# message (thingbench, on loopback and again with a 5 ms link on every
# hop), a command through the Tasmota adapter beside one
# to a thing's node (adapterbench), a group message's fan-out to 5, 20
# and 50 members by GossipSub beside the server's push (gossipbench, and
# with a 5 ms link on every hop for 5 and 20),
# two nodes behind NAT routers in network namespaces: relayed start, hole
# punch, and latency direct, relayed and through the server (relaybench,
# as root; otherwise it prints "skipped"),
# then runs the packages' micro benchmarks. Figures are reported, never asserted.
bench: build baremochi
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || ./.ci/apt-install mosquitto || \
		echo "mosquitto missing: the bench runs without it (apt-get install -y mosquitto)"
	$(GO) run ./bench/cmd/mqbench --mqtter bin/mqtter --baremochi bin/baremochi $(BENCHFLAGS)
	$(GO) run ./bench/cmd/nodebench --mqtter bin/mqtter
	$(GO) run ./bench/cmd/thingbench --mqtter bin/mqtter
	$(GO) run ./bench/cmd/thingbench --mqtter bin/mqtter --link-delay 5ms --n 300 --chain-n 100
	$(GO) run ./bench/cmd/adapterbench --mqtter bin/mqtter
	$(GO) run ./bench/cmd/gossipbench --mqtter bin/mqtter
	$(GO) run ./bench/cmd/gossipbench --mqtter bin/mqtter --link-delay 5ms --sizes 5,20 --n 100
	$(GO) run ./bench/cmd/restorebench --mqtter bin/mqtter --n 100000,1000000
	@command -v iptables >/dev/null 2>&1 || ./.ci/apt-install iptables || true
	$(GO) run ./bench/cmd/relaybench --mqtter bin/mqtter
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./...

# bench-quick is the same run with small numbers: a smoke test in seconds.
bench-quick: build baremochi
	$(GO) run ./bench/cmd/mqbench --mqtter bin/mqtter --baremochi bin/baremochi --quick $(BENCHFLAGS)
	$(GO) run ./bench/cmd/thingbench --mqtter bin/mqtter --quick
	$(GO) run ./bench/cmd/adapterbench --mqtter bin/mqtter --quick
	$(GO) run ./bench/cmd/gossipbench --mqtter bin/mqtter --quick
	@command -v iptables >/dev/null 2>&1 || ./.ci/apt-install iptables || true
	$(GO) run ./bench/cmd/relaybench --mqtter bin/mqtter --quick

# fuzz runs every native fuzz target in the repository for FUZZTIME each.
fuzz:
	@list=$$($(GO) test -list '^Fuzz' ./...) || { echo "$$list"; exit 1; }; \
	targets=$$(echo "$$list" | awk '/^Fuzz/ { names = names " " $$1; next } \
		/^ok/ { n = split(names, a, " "); for (i = 1; i <= n; i++) print $$2, a[i]; names = "" }'); \
	if [ -z "$$targets" ]; then echo "no fuzz targets"; exit 0; fi; \
	set -- $$targets; \
	while [ $$# -gt 0 ]; do \
		echo "== $$1 $$2 ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$2\$$" -fuzztime $(FUZZTIME) "$$1" || exit 1; \
		shift 2; \
	done

# faults runs the randomized fault test (kills, restarts and pauses of the
# server and the nodes, new devices, concurrent senders) over FAULT_RUNS
# fresh seeds, and the convergence test over as many; make test runs a
# few fixed seeds of each. A failing seed is printed with its replay line.
FAULT_RUNS ?= 20
faults: build
	@seeds=$$(for i in $$(seq $(FAULT_RUNS)); do printf 'random,'; done); \
	MQTTER_BIN="$(CURDIR)/bin/mqtter" MQTTER_FAULT_SEEDS=$$seeds MQTTER_CONVERGE_SEEDS=$$seeds \
		$(GO) test -count=1 -timeout 60m -v -run '^(TestFaults|TestConverge)$$' ./cmd/mqtter/ | \
		grep -E '^(=== RUN|--- |\s+--- |ok|FAIL|PASS)|seed [0-9]+:|replay:|not converged|^        \S'

clean:
	rm -rf bin coverage.out coverage.html cover.out
