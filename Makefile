# berth: `make run` starts the daemon with the shipped config and shows a full flow;
# `make test` runs every test. Both install what is missing first.
SWIFT ?= swift

.PHONY: deps build test run stop clean bench format lint docs

deps:
	@./scripts/install-deps.sh

# A debug build, linked dynamically (a debug build linked with --static-swift-stdlib misses
# Foundation's ICU symbols). `make install` builds release binaries with the standard library
# and Foundation linked statically, which is what makes `berth` start fast (docs/benchmarks.md).
build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The tour builds by itself, with the compiler's output in run/build.log unless the build fails.
run: deps
	@./scripts/demo.sh

stop:
	@if [ -f run/berthd.pid ] && kill -0 $$(cat run/berthd.pid) 2>/dev/null; then \
		kill -TERM $$(cat run/berthd.pid); echo "stopped berthd (pid $$(cat run/berthd.pid))"; \
	else echo "no berthd running from ./run"; fi

clean:
	rm -rf .build run

# swift-format with the repository's .swift-format; CI runs `lint` and fails on any finding.
format:
	swift-format format --in-place --recursive --parallel Sources Tests Benchmarks Package.swift

lint:
	swift-format lint --strict --recursive --parallel Sources Tests Benchmarks Package.swift

# docs/cli.md from the CLIs' own help (a test fails when the committed page is stale).
docs: build
	python3 scripts/gen-docs.py cli --bin "$$($(SWIFT) build --show-bin-path)" > docs/cli.md

# Every benchmark, one after the other (release builds; docs/benchmarks.md has the figures).
bench: deps
	./Benchmarks/run-invoke-bench.sh
	./Benchmarks/run-usage-bench.sh
	./Benchmarks/run-control-bench.sh

# `make install` builds release binaries and installs them with the config, the systemd units,
# the sysusers.d/tmpfiles.d entries, the man pages, shell completions and the manual
# (docs/operating.md, "Install as a service"). PREFIX (default
# /usr/local) and DESTDIR are honoured; BIN_DIR=DIR installs the binaries already in DIR
# instead of building, SKIP_BUILD=1 reuses the last release build. `make uninstall` removes
# what install put there and keeps /etc/berth and /var/lib/berth.
PREFIX ?= /usr/local
.PHONY: install uninstall

install:
	@PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" BIN_DIR="$(BIN_DIR)" SKIP_BUILD="$(SKIP_BUILD)" SWIFT="$(SWIFT)" ./scripts/install.sh install

uninstall:
	@PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" ./scripts/install.sh uninstall
