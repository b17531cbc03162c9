# polyvirt.compute: the commands a newcomer and CI use (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
BIN := $(CURDIR)/$(VENV)/bin
# ansible-test needs the collection under .../ansible_collections/polyvirt/compute, outside any git
# checkout (inside ours it would list files through git, where .build is ignored): we copy it there.
# One tree per checkout, so two checkouts can test at the same time.
TEST_TREE ?= $(or $(TMPDIR),/tmp)/polyvirt-compute-test-$(shell printf %s "$(CURDIR)" | md5sum | cut -c1-8)/ansible_collections/polyvirt/compute
# ansible-playbook finds the collection through a symlink to this checkout.
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(BIN):$(PATH)

# A second venv with the `ansible` package, for the collections it bundles: community.general (the
# benchmark compares with it) and kubernetes.core (the Hikube emulator is tested with it). Kept out of .venv.
TOOLS_VENV := .build/tools-venv

REQS := $(wildcard requirements/*.txt) tests/requirements.txt $(wildcard tests/simulators/*/requirements.txt)

.PHONY: help venv collection pip-bootstrap test-tree sanity-tools lab demo demo-clean test lint awx changelog sanity units fuzz simulators integration inventory roles bench clean

help:
	@echo "make demo        fresh machine -> LXD lab -> playbooks/demo.yml (make demo-clean removes the guests)"
	@echo "make test        sanity + unit tests + simulator tests + integration tests (what CI runs)"
	@echo "make bench       benchmarks in bench/, printed side by side"

$(VENV)/.stamp: $(REQS)
	$(PYTHON) -m venv $(VENV) || { apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q $(foreach r,$(REQS),-r $(r))
	touch $@

venv: $(VENV)/.stamp

collection:
	@mkdir -p .build/collections/ansible_collections/polyvirt
	@ln -sfn $(CURDIR) .build/collections/ansible_collections/polyvirt/compute

# The local LXD lab: apt packages, the daemon, a dir pool, a bridge and our two images.
lab: venv collection
	$(BIN)/ansible-playbook playbooks/lab.yml

demo: lab
	$(BIN)/ansible-playbook playbooks/demo.yml

demo-clean: venv collection
	$(BIN)/ansible-playbook playbooks/demo.yml -e demo_state=absent

test: lint awx sanity units fuzz simulators integration inventory roles

# Copy the tracked and new (not ignored) files into an ansible_collections tree for ansible-test.
test-tree:
	@rm -rf $(TEST_TREE) && mkdir -p $(TEST_TREE)
	@git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents -P {} $(TEST_TREE)/ 2>/dev/null || true

# ansible-test --venv downloads a pip bootstrap script from a host we cannot reach: seed its cache with ours.
pip-bootstrap: venv
	@v=$$(sed -n "s/^ *pip='\([0-9.]*\)',/\1/p" $(VENV)/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -n 1); \
	  cache=$$HOME/.ansible/test/cache/get_pip_$${v//./_}.py; \
	  [ -s "$$cache" ] || { mkdir -p "$$(dirname "$$cache")" && cp tests/sanity/pip_bootstrap.py "$$cache"; }

# ansible-test's shellcheck test needs the shellcheck program; without it the test is skipped.
sanity-tools:
	@command -v shellcheck >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck; }

sanity: venv test-tree pip-bootstrap sanity-tools
	cd $(TEST_TREE) && $(BIN)/ansible-test sanity --venv --python 3.11 --color no

units: venv collection test-tree pip-bootstrap
	$(VPY) hacking/capabilities.py --check
	cd $(TEST_TREE) && $(BIN)/ansible-test units --venv --python 3.11 --color no

# Property-based fuzz test of every module against the lab, bounded in time (tests/fuzz/test_fuzz.py:
# POLYVIRT_FUZZ_SECONDS, default 90; POLYVIRT_FUZZ_SEED repeats a run).
fuzz: lab collection
	$(VPY) -m pytest -q -p no:cacheprovider tests/fuzz

simulators: venv $(TOOLS_VENV)/.stamp
	POLYVIRT_TEST_COLLECTIONS=$$(ls -d $(CURDIR)/$(TOOLS_VENV)/lib/python3*/site-packages) $(VPY) -m pytest -q -p no:cacheprovider -rs tests/simulators

# The conformance suite once per backend (tests/integration/README.md). BACKENDS="lxd proxmox" picks
# them (default: each with a vars file and a driver), TARGETS="snapshot disk" the targets. Only lxd needs the lab.
# JOBS backends run at once, each in its own copy of the test tree (the runs wait on servers more than they compute).
JOBS ?= 2
integration: $(if $(BACKENDS),$(if $(filter lxd,$(BACKENDS)),lab,venv),lab) test-tree
	cd $(TEST_TREE) && $(BIN)/python tests/integration/run.py --backends "$(BACKENDS)" --targets "$(TARGETS)" --jobs $(JOBS)

# The inventory plugin on one config file with sources on the LXD lab and on the four simulators at once
# (tests/inventory/run.py); it removes the containers it makes.
inventory: lab collection
	$(VPY) tests/inventory/run.py

# The lint and packaging tools (ansible-lint, antsibull-docs, antsibull-changelog, ansible-builder) in a
# venv of their own, so they never change what the tests run with.
LINT_VENV := .build/lint-venv
LINT_BIN := $(CURDIR)/$(LINT_VENV)/bin

$(LINT_VENV)/.stamp: tests/lint/requirements.txt
	$(PYTHON) -m venv $(LINT_VENV) || { apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(LINT_VENV); }
	$(LINT_VENV)/bin/python -m pip install -q --upgrade pip
	$(LINT_VENV)/bin/python -m pip install -q -r tests/lint/requirements.txt
	touch $@

# The changelog fragments, changelogs/changelog.yaml, the plugin and role docs, and ansible-lint's production
# profile over the whole collection with no rule skipped. --offline: ansible-lint installs nothing from Galaxy.
lint: $(LINT_VENV)/.stamp collection
	PATH=$(LINT_BIN):$$PATH antsibull-changelog lint
	PATH=$(LINT_BIN):$$PATH antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
	$(LINT_BIN)/python tests/lint/changelog_current.py
	PATH=$(LINT_BIN):$$PATH antsibull-docs lint-collection-docs --plugin-docs --no-skip-rstcheck \
	  --validate-collection-refs all --disallow-unknown-collection-refs --check-extra-docs-refs .
	PATH=$(LINT_BIN):$$PATH ansible-lint --offline --profile production --strict --nocolor

# AWX / AAP readiness (tests/awx): the credential types in extensions/awx/ against AWX's rules and the
# variables the modules read, and meta/execution-environment.yml rendered by ansible-builder (no container
# build), its requirements installed into a fresh venv (pip's cache keeps that quick) and imported.
awx: venv $(LINT_VENV)/.stamp
	POLYVIRT_LINT_BIN=$(LINT_BIN) $(VPY) -m pytest -q -p no:cacheprovider -rs tests/awx

# Fold new changelog fragments into the release in preparation (the version in galaxy.yml):
# changelogs/changelog.yaml and CHANGELOG.rst.
changelog: $(LINT_VENV)/.stamp collection
	PATH=$(LINT_BIN):$$PATH antsibull-changelog release --update-existing --reload-plugins

# The provision and decommission roles end to end (tests/roles/run.py): over SSH on the LXD lab, and on
# every simulator with the conformance suite's probes. BACKENDS="lxd hikube" picks them.
roles: lab collection
	$(VPY) tests/roles/run.py --backends "$(BACKENDS)"

# The tools venv (TOOLS_VENV above).
$(TOOLS_VENV)/.stamp: bench/requirements.txt
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q -r bench/requirements.txt
	touch $@

bench: lab collection $(TOOLS_VENV)/.stamp
	$(TOOLS_VENV)/bin/python bench/lxd_noop.py
	$(TOOLS_VENV)/bin/python bench/inventory_proxmox.py
	$(TOOLS_VENV)/bin/python bench/inventory_lxd.py
	$(TOOLS_VENV)/bin/python bench/hikube_noop.py
	$(VPY) bench/provision_lxd.py
	$(TOOLS_VENV)/bin/python bench/proxmox_noop.py

clean:
	rm -rf .build tests/output
