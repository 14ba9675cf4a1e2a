# berth: `make run` starts the daemon with the shipped config and shows a full flow;
# `make test` runs every test. Both install what is missing first.
SWIFT ?= swift

.PHONY: deps build test run stop clean

deps:
	@./scripts/install-deps.sh

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

run: build
	@./scripts/demo.sh

stop:
	@if [ -f run/berthd.pid ] && kill -0 $$(cat run/berthd.pid) 2>/dev/null; then \
		kill -TERM $$(cat run/berthd.pid); echo "stopped berthd (pid $$(cat run/berthd.pid))"; \
	else echo "no berthd running from ./run"; fi

clean:
	rm -rf .build run
