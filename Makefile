# clever-cluster: `make demo` for a tour, `make test` for every check CI runs.
SHELL := /bin/bash
PREFIX ?= /usr
DESTDIR ?=
SYSCONFDIR ?= /etc
# Debian 12 keeps units in /lib (the /usr move of unit files came later).
SYSTEMD_UNIT_DIR ?= /lib/systemd/system
OCF_ROOT ?= $(PREFIX)/lib/ocf
OCF_PROVIDER_DIR = $(DESTDIR)$(OCF_ROOT)/resource.d/clever
# The package's own programs that are not commands: the vm agent's libvirt-linked build
# (agents/vm/src/linked.rs), which must not sit among the agents (Pacemaker would list it). The vm
# binary looks for it next to itself, then here: a LIBEXEC_DIR other than the default is compiled
# in, so give the same PREFIX (or LIBEXEC_DIR) to make build and make install.
LIBEXEC_DIR ?= $(PREFIX)/lib/clever-cluster
ifneq ($(LIBEXEC_DIR),/usr/lib/clever-cluster)
export CLEVER_LIBEXEC_DIR := $(LIBEXEC_DIR)
endif
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

# Every package under agents/ is an OCF agent whose binary has the agent's name; the admin commands
# (commands/: clevervm with its LSB init script, clever-cib) are installed to sbin.
OCF_AGENTS := $(patsubst agents/%/Cargo.toml,%,$(wildcard agents/*/Cargo.toml))
RELEASE_DIR := $(or $(CARGO_TARGET_DIR),target)/release
# Agents that need no C library but libc ship statically linked: that spares the dynamic loader's
# work on every call, a quarter of a millisecond of a one-millisecond monitor (make bench). A
# separate build with an explicit --target keeps the static flag off build scripts and proc
# macros. vm stays dynamic: its package also builds vm-libvirt, which links libvirt.so and so
# cannot be static (vm itself links only libc); clevervm is not on a hot path.
STATIC_AGENTS := drbdfs gwping
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
STATIC_DIR := $(or $(CARGO_TARGET_DIR),target)/$(HOST_TRIPLE)/release
export CLEVER_STATIC_DIR := $(STATIC_DIR)
export CLEVER_STATIC_AGENTS := $(STATIC_AGENTS)

.PHONY: all setup build build-only docs lint unit-test install-test deb deb-test fuzz-smoke fuzz test install demo demo-down tour bench bench-lab clean vagrant-validate vagrant-assets vmcluster-test soak

all: build

setup:
	@bash scripts/setup.sh

DOC_DIR := target/docs

build: setup build-only

# The build without the apt set-up: what the Debian package build calls.
build-only:
	$(CARGO) build --release --workspace --bins
	@test -n "$(HOST_TRIPLE)" || { echo "rustc -vV named no host triple" >&2; exit 1; }
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(HOST_TRIPLE) \
	  $(addprefix -p clever-agent-,$(STATIC_AGENTS))
	$(RELEASE_DIR)/clever-docgen $(DOC_DIR)

# docs/parameters.md, every agent's parameters and actions, rendered from the declarations: run it
# after changing one and commit the result (cargo test -p clever-docgen fails while it differs).
docs:
	$(CARGO) run --release -p clever-docgen -- --parameters docs/parameters.md

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The hostile-input and fault tests each leave one count in $(HOSTILE_DIR); the summary line per
# agent (inputs tried, panics, side effects on rejected input) follows the tests.
HOSTILE_DIR := $(or $(CARGO_TARGET_DIR),target)/tmp/hostile-summary

unit-test: setup
	rm -rf $(HOSTILE_DIR)
	$(CARGO) test --workspace
	bash scripts/hostile-summary.sh $(HOSTILE_DIR)

# Installs into a scratch DESTDIR and checks the layout Pacemaker relies on.
install-test: build
	bash scripts/check-install.sh $(OCF_AGENTS)

test: lint unit-test install-test deb-test vmcluster-test fuzz-smoke vagrant-validate

# The whole system on two VM nodes (testing/vmlab/tests/cluster.rs): qemu (TCG) guests booting a
# debootstrapped Debian 12 root with systemd (built once, ~3 min, cached in /var/cache/clever-vmlab)
# install our package and load the generated CIB as the README's install steps say, then run the
# stack with real DRBD, fencing and the VM through the failure scenarios (~9 min, docs/labs.md).
vmcluster-test: setup deb
	CLEVER_VMLAB_DEB="$$(ls -t $(CURDIR)/build/deb/clever-cluster_*_amd64.deb | head -n 1)" \
		$(CARGO) test -p clever-vmlab --features cluster --test cluster -- --nocapture

# Randomized faults and operator actions against the namespace lab with the VM, one after another
# (testing/lab/src/soak.rs); not part of `make test`. RUNS= sizes it, SEED= replays one.
RUNS ?= 100
SEED ?=
SOAK_DIR := /run/clever-lab-soak
soak: build
	$(RELEASE_DIR)/clever-lab --dir $(SOAK_DIR) soak --runs $(RUNS) $(if $(SEED),--seed $(SEED)) \
	  --agents $(RELEASE_DIR)

# The Vagrantfile parses and its configuration is valid, for both providers, without fencing and
# with each way of giving it a fence login (no VM is started: CI has no box to boot); the
# provisioning scripts parse. The Vagrant description's generator check is a cargo test
# (commands/clever-cib/tests/vagrant.rs).
VAGRANT_FENCE_PASSWORD := CLEVER_FENCE_HOST=10.0.2.2 CLEVER_FENCE_USER=lab CLEVER_FENCE_PASSWORD=lab
vagrant-validate: setup
	vagrant validate --ignore-provider
	VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate
	$(VAGRANT_FENCE_PASSWORD) vagrant validate --ignore-provider
	key=$$(mktemp) && trap 'rm -f "$$key"' EXIT && \
	  CLEVER_FENCE_HOST=192.168.121.1 CLEVER_FENCE_USER=lab CLEVER_FENCE_IDENTITY="$$key" \
	  VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate
	for script in provision/*.sh; do sh -n "$$script" || exit 1; done

# What the Vagrant lab's boxes install and run (docs/labs.md, "A Vagrant lab for humans"): our
# Debian package in build/deb/ (make deb) and, in build/vagrant/, the counter guest and its domain
# XML for a VM named VAGRANT_DOMAIN whose files are in VAGRANT_MOUNT, the DRBD filesystem of
# provision/vagrant-cluster.toml (a test checks that they agree). The Vagrantfile's rsync'd
# folder brings build/ to /vagrant/build/ in the boxes.
VAGRANT_MOUNT := /srv/data
VAGRANT_DOMAIN := clever
vagrant-assets: deb
	$(CARGO) build --release -p clever-lab --bin clever-lab
	rm -rf build/vagrant
	$(RELEASE_DIR)/clever-lab guest-image --out build/vagrant --mount $(VAGRANT_MOUNT) \
	  --domain $(VAGRANT_DOMAIN)

# Every parser and every agent's parameters under libFuzzer, briefly, from the committed corpora
# (which it leaves untouched). make fuzz runs each target to FUZZ_RUNS executions (FUZZ_SECONDS at
# most), prints executions and coverage per target and keeps the grown corpus, minimised, in
# testing/fuzz/corpus/ to commit (docs/fuzzing.md).
FUZZ_RUNS ?= 1000000
FUZZ_SECONDS ?= 3600
fuzz-smoke: setup
	FUZZ_RUNS= bash scripts/fuzz.sh 10

fuzz: setup
	FUZZ_RUNS=$(FUZZ_RUNS) bash scripts/fuzz.sh --keep $(FUZZ_SECONDS)

# The Debian package, in build/deb/ (debian/rules directly: the toolchain is rustup's, so
# dpkg-buildpackage's build-dependency check would fail on cargo).
deb: setup
	rm -rf build/deb
	debian/rules clean
	debian/rules build
	fakeroot debian/rules binary
	@ls build/deb/*.deb

# Builds the package, lints it, installs it into a clean root and removes it again.
deb-test: deb
	bash scripts/check-deb.sh $(OCF_AGENTS)

# Binaries are replaced by rename, never rewritten in place: Pacemaker may be executing an agent
# at the very moment of an upgrade.
install:
	@test -n "$(OCF_AGENTS)" || { echo "no agents under agents/" >&2; exit 1; }
	install -d -m 0755 $(OCF_PROVIDER_DIR)
	@for agent in $(OCF_AGENTS); do \
	  case " $(STATIC_AGENTS) " in *" $$agent "*) dir=$(STATIC_DIR);; *) dir=$(RELEASE_DIR);; esac; \
	  test -x $$dir/$$agent || { echo "$$dir/$$agent is not built: run make build" >&2; exit 1; }; \
	  install -m 0755 $$dir/$$agent $(OCF_PROVIDER_DIR)/.$$agent.new && \
	  mv -f $(OCF_PROVIDER_DIR)/.$$agent.new $(OCF_PROVIDER_DIR)/$$agent && \
	  echo "installed $(OCF_PROVIDER_DIR)/$$agent"; \
	done
	@case " $(OCF_AGENTS) " in *" vm "*) \
	  test -x $(RELEASE_DIR)/vm-libvirt || { echo "$(RELEASE_DIR)/vm-libvirt is not built: run make build" >&2; exit 1; }; \
	  install -d -m 0755 $(DESTDIR)$(LIBEXEC_DIR) && \
	  install -m 0755 $(RELEASE_DIR)/vm-libvirt $(DESTDIR)$(LIBEXEC_DIR)/.vm-libvirt.new && \
	  mv -f $(DESTDIR)$(LIBEXEC_DIR)/.vm-libvirt.new $(DESTDIR)$(LIBEXEC_DIR)/vm-libvirt && \
	  echo "installed $(DESTDIR)$(LIBEXEC_DIR)/vm-libvirt";; \
	esac
	@if test -x $(RELEASE_DIR)/clevervm; then \
	  install -d -m 0755 $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(SYSCONFDIR)/init.d && \
	  install -m 0755 $(RELEASE_DIR)/clevervm $(DESTDIR)$(PREFIX)/sbin/.clevervm.new && \
	  mv -f $(DESTDIR)$(PREFIX)/sbin/.clevervm.new $(DESTDIR)$(PREFIX)/sbin/clevervm && \
	  install -m 0755 packaging/clevervm.init $(DESTDIR)$(SYSCONFDIR)/init.d/clevervm && \
	  echo "installed $(DESTDIR)$(PREFIX)/sbin/clevervm and $(DESTDIR)$(SYSCONFDIR)/init.d/clevervm (not enabled)"; \
	fi
	@test -x $(RELEASE_DIR)/clever-console || { echo "$(RELEASE_DIR)/clever-console is not built: run make build" >&2; exit 1; }
	install -d -m 0755 $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(SYSCONFDIR)/pam.d $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	install -m 0755 $(RELEASE_DIR)/clever-console $(DESTDIR)$(PREFIX)/sbin/.clever-console.new
	mv -f $(DESTDIR)$(PREFIX)/sbin/.clever-console.new $(DESTDIR)$(PREFIX)/sbin/clever-console
	install -m 0644 packaging/clever-console.pam $(DESTDIR)$(SYSCONFDIR)/pam.d/clever-console
	sed 's|/usr/sbin/clever-console|$(PREFIX)/sbin/clever-console|' packaging/clever-console.service \
	  > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/clever-console.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/clever-console.service
	@echo "installed $(DESTDIR)$(PREFIX)/sbin/clever-console, its PAM service and systemd unit (not enabled)"
	@test -d $(DOC_DIR) || { echo "$(DOC_DIR) is missing: run make build" >&2; exit 1; }
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/man/man7 $(DESTDIR)$(PREFIX)/share/man/man8 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0644 $(DOC_DIR)/man7/*.7 $(DESTDIR)$(PREFIX)/share/man/man7/
	install -m 0644 $(DOC_DIR)/man8/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 $(DOC_DIR)/completions/clevervm.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/clevervm
	install -m 0644 $(DOC_DIR)/completions/_clevervm $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_clevervm
	install -m 0644 $(DOC_DIR)/completions/clevervm.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/clevervm.fish
	install -d -m 0755 $(DESTDIR)$(PREFIX)/sbin
	install -m 0755 $(RELEASE_DIR)/clever-cib $(DESTDIR)$(PREFIX)/sbin/.clever-cib.new
	mv -f $(DESTDIR)$(PREFIX)/sbin/.clever-cib.new $(DESTDIR)$(PREFIX)/sbin/clever-cib
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/doc/clever-cluster/cib
	cp -r pacemaker-cib/README.md pacemaker-cib/examples $(DESTDIR)$(PREFIX)/share/doc/clever-cluster/cib/

# The main job: a live 2-node cluster (namespaces on this machine) running the VM stack with our
# agents, a controlled migration, and how to look around. The lab keeps running until demo-down.
demo: build
	$(RELEASE_DIR)/clever-lab up --vm --agents $(RELEASE_DIR)
	$(RELEASE_DIR)/clever-lab tour
	@echo
	@echo "The lab keeps running. Try: $(RELEASE_DIR)/clever-lab status;"
	@echo "  $(RELEASE_DIR)/clever-lab exec node1 -- $(CURDIR)/$(RELEASE_DIR)/clevervm status"
	@echo "  $(RELEASE_DIR)/clever-lab power-cut node1   (or gateway-cut node1, link-cut node1)"
	@echo "make demo-down removes it (nothing is left behind)."

demo-down:
	$(RELEASE_DIR)/clever-lab down

# A tour of the agents, the install layout and the conformance harness, without a cluster.
tour: build
	bash scripts/demo.sh

# Every benchmark, the lab's failover timelines included (bench-lab alone: about 13 minutes). The
# benches time the binaries make install ships (CLEVER_STATIC_DIR: the static agents).
bench: build
	$(CARGO) bench --workspace

bench-lab: build
	$(CARGO) bench -p clever-lab --bench failover

clean:
	$(CARGO) clean
