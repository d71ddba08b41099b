# clever-cluster: `make demo` for a tour, `make test` for every check CI runs.
SHELL := /bin/bash
PREFIX ?= /usr
DESTDIR ?=
OCF_ROOT ?= $(PREFIX)/lib/ocf
OCF_PROVIDER_DIR = $(DESTDIR)$(OCF_ROOT)/resource.d/clever
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

# Every agent is a package under agents/ whose binary has the agent's name.
AGENTS := $(patsubst agents/%/Cargo.toml,%,$(wildcard agents/*/Cargo.toml))
RELEASE_DIR := target/release

.PHONY: all setup build lint unit-test install-test test install demo bench clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace --bins

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit-test: setup
	$(CARGO) test --workspace

# Installs into a scratch DESTDIR and checks the layout Pacemaker relies on.
install-test: build
	bash scripts/check-install.sh $(AGENTS)

test: lint unit-test install-test

# Binaries are replaced by rename, never rewritten in place: Pacemaker may be executing an agent
# at the very moment of an upgrade.
install:
	@test -n "$(AGENTS)" || { echo "no agents under agents/" >&2; exit 1; }
	install -d -m 0755 $(OCF_PROVIDER_DIR)
	@for agent in $(AGENTS); do \
	  test -x $(RELEASE_DIR)/$$agent || { echo "$(RELEASE_DIR)/$$agent is not built: run make build" >&2; exit 1; }; \
	  install -m 0755 $(RELEASE_DIR)/$$agent $(OCF_PROVIDER_DIR)/.$$agent.new && \
	  mv -f $(OCF_PROVIDER_DIR)/.$$agent.new $(OCF_PROVIDER_DIR)/$$agent && \
	  echo "installed $(OCF_PROVIDER_DIR)/$$agent"; \
	done

demo: build
	bash scripts/demo.sh

bench: build
	$(CARGO) bench --workspace

clean:
	$(CARGO) clean
