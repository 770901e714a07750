# Two commands: `make run` (the CLV pipeline on full CDNOW) and `make test` (the whole suite);
# `make test-fast` skips the end-to-end and notebook tests.
# Both create .venv with Python 3.10 on first use and install requirements.lock without resolution.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip's notes about configured-but-absent local indexes on some machines; everything else is shown.
QUIET_PIP := { grep -v 'is ignored: it is neither a file nor a directory' || true; }
VENV := .venv
PY := $(VENV)/bin/python
export TF_USE_LEGACY_KERAS := 1
export PYTHONHASHSEED := 0

.PHONY: run test test-fast bench notebook image lock clean-runs

$(VENV)/.installed: requirements.lock setup.py
	@python310=$$(bash .ci/find_python310.sh) || { echo "$$python310" >&2; exit 1; }; \
	  echo "Creating $(VENV) with $$python310"; \
	  "$$python310" -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | $(QUIET_PIP)
	@touch $@

run: $(VENV)/.installed
	$(PY) -m pipelines run clv

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m 'not e2e and not notebook' tests

bench: $(VENV)/.installed
	$(PY) benchmarks/clv_pipeline.py

# Jupyter (Notebook 7) on notebooks/; run the pipeline first. As root, Jupyter also needs --allow-root.
notebook: $(VENV)/.installed
	$(VENV)/bin/jupyter notebook --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

# The container image for Vertex AI Pipelines and Dataflow (needs a Docker engine); push it to a registry
# the project can read, e.g. IMAGE=us-central1-docker.pkg.dev/PROJECT/marketing-ml/tfx:latest.
IMAGE ?= marketing-ml/tfx:latest
image:
	docker build -t $(IMAGE) .
	@echo "Built $(IMAGE); push it with: docker push $(IMAGE)"

# Re-resolve the lock in a scratch venv (needs the network to the package index).
lock:
	@python310=$$(bash .ci/find_python310.sh) || { echo "$$python310" >&2; exit 1; }; \
	  rm -rf /tmp/lock-venv && "$$python310" -m venv /tmp/lock-venv && \
	  /tmp/lock-venv/bin/pip install --quiet 'tfx[kfp]==1.16.0' 'apache-beam[gcp]' lifetimes==0.11.3 \
	    'scipy<1.16' 'pandas<2' pytest nbclient ipykernel nbformat matplotlib 'tf-keras==2.16.0' notebook && \
	  { head -3 requirements.lock; /tmp/lock-venv/bin/pip freeze; } > requirements.lock.new && \
	  mv requirements.lock.new requirements.lock

clean-runs:
	rm -rf runs
