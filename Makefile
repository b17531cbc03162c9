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

.PHONY: help venv collection pip-bootstrap test-tree sanity-tools lab demo demo-clean test sanity units fuzz simulators integration bench clean

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

test: sanity units fuzz simulators integration

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
integration: $(if $(BACKENDS),$(if $(filter lxd,$(BACKENDS)),lab,venv),lab) test-tree
	cd $(TEST_TREE) && $(BIN)/python tests/integration/run.py --backends "$(BACKENDS)" --targets "$(TARGETS)"

# The tools venv (TOOLS_VENV above).
$(TOOLS_VENV)/.stamp: bench/requirements.txt
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q -r bench/requirements.txt
	touch $@

bench: lab $(TOOLS_VENV)/.stamp
	$(TOOLS_VENV)/bin/python bench/lxd_noop.py
	$(TOOLS_VENV)/bin/python bench/proxmox_noop.py

clean:
	rm -rf .build tests/output
