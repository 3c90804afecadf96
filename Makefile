# Two entry points (README): `make demo` runs the main job on the bundled samples, `make test` the suite.
# Both build the virtual environment from requirements.lock first (uv; ~8 GB, 1-3 min on a fresh machine).
VENV := .venv
PY := $(VENV)/bin/python

$(VENV)/.ready: pyproject.toml requirements.lock
	python3 -m pip install -q uv
	uv venv -q --allow-existing -p 3.11 $(VENV)
	uv pip install -q -p $(PY) -r requirements.lock
	uv pip install -q -p $(PY) --no-deps -e .
	touch $@

.PHONY: demo test samples bench
demo: $(VENV)/.ready
	$(VENV)/bin/duplexcorpus run data_samples/audio --out runs/samples --workflow workflows/samples.yaml
	$(VENV)/bin/duplexcorpus evaluate runs/samples --truth data_samples/truth

test: $(VENV)/.ready .venv-ls/.ready
	$(PY) -m pytest -q tests

samples: $(VENV)/.ready  # re-render data_samples (needs: apt-get install espeak-ng)
	$(PY) data_samples/make_samples.py

bench: $(VENV)/.ready
	$(PY) bench/bench_accuracy.py
	$(PY) bench/bench_vad.py
	$(PY) bench/bench_run.py --minutes 120

# Label Studio is a separate service with its own venv (review serve, and the review tests)
.venv-ls/.ready: annotation_ui/requirements-labelstudio.lock
	python3 -m pip install -q uv
	uv venv -q --allow-existing -p 3.11 .venv-ls
	uv pip install -q -p .venv-ls/bin/python -r annotation_ui/requirements-labelstudio.lock
	touch $@
