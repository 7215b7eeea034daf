# Two commands on a fresh machine: `make demo` and `make test`; each creates .venv first.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# PyTorch is optional: only the .pth tests and the torch-parity checks use it. Install the
# CPU build when the machine carries its wheel (pip's find-links); never the multi-GB CUDA one.
TORCH_CPU := torch==2.13.0+cpu
# ONNX export is optional too: the [onnx] extra of pyproject.toml, and jax2onnx without its
# dependencies (they pin orbax-checkpoint below the version used here; HRNet needs none of them).
JAX2ONNX := jax2onnx>=0.17.1,<0.18
# pip warns about every package missing from the machine's extra local index: noise.
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: test test-fast demo bench clean

# The package with its test and ONNX extras (requirements.txt first: jax2onnx, installed
# without its dependencies, comes last, or pip reports them missing at the next install).
# PYTHONWARNINGS quiets setuptools' notice that an editable install is one (a warning).
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install -q -r requirements.txt 2>&1 | $(QUIET_PIP)
	@{ PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install -q -e ".[onnx]" && \
	   $(PY) -m pip install -q --no-deps "$(JAX2ONNX)"; } 2>&1 | $(QUIET_PIP) \
	  || echo "note: ONNX export unavailable (jax2onnx/onnxruntime did not install); its tests will be skipped"
	touch $(STAMP)

# The tests' addition: the CPU PyTorch wheel (the demo never reads a .pth file).
$(TEST_STAMP): $(STAMP)
	@$(PY) -m pip install -q "$(TORCH_CPU)" 2>&1 | $(QUIET_PIP) \
	  || echo "note: no local CPU PyTorch wheel; the tests that read .pth files will be skipped"
	touch $(TEST_STAMP)

# The whole suite on every core (pytest-xdist; at most 4 workers: each holds a few GB),
# then its 15 slowest tests.
PYTEST := $(PY) -m pytest -q -n auto --maxprocesses=4 --dist worksteal
test: $(TEST_STAMP)
	$(PYTEST) --durations=15

# The edit-test loop: everything but the tests marked slow (training runs, subprocesses,
# multi-device equality); those still run in `make test`.
test-fast: $(TEST_STAMP)
	$(PYTEST) -m "not slow" --durations=10

# The demo: HRGAN learns to find the joints of rendered figures, end to end on a CPU
# (8 minutes on a quiet 2-core CPU, .venv included).  Everything goes under demo_out/: data/ (synthetic COCO-format
# dataset), run/ (checkpoints, TensorBoard events, metrics.jsonl, curves.png, eval/),
# export/ (generator.msgpack, generator.safetensors, config.json, generator*.onnx, generator_savedmodel/) and predictions/
# (keypoints.pose.json and the validation images with skeletons drawn).  A rerun reuses
# the dataset and resumes (or skips) the training; `make clean` starts over.
DEMO := demo_out
DEMO_CFG := --config=synthetic
DEMO_DATA := $(DEMO)/data/coco
DEMO_RUN := $(DEMO)/run

demo: $(STAMP)
	@mkdir -p $(DEMO)
	@echo "== 1/6 synthetic dataset"
	@if [ -f $(DEMO)/data/.complete ]; then echo "reusing $(DEMO)/data"; else \
	  rm -rf $(DEMO)/data && \
	  $(PY) launch.py --mode=synth $(DEMO_CFG) --config.data.root=$(DEMO)/data && \
	  touch $(DEMO)/data/.complete; fi
	@echo "== 2/6 train HRGAN (generator: the 'small' HRNet; discriminator: the 'micro' one)"
	$(PY) launch.py --mode=train $(DEMO_CFG) --config.data.root=$(DEMO_DATA) --workdir=$(DEMO_RUN)
	@echo "== 3/6 evaluate the best checkpoint (COCO AP, detector boxes, synthetic val2017)"
	$(PY) launch.py --mode=evaluate $(DEMO_CFG) --config.data.root=$(DEMO_DATA) --workdir=$(DEMO_RUN)
	@echo "== 4/6 export the generator"
	$(PY) launch.py --mode=export $(DEMO_CFG) --workdir=$(DEMO_RUN) --out=$(DEMO)/export
	$(PY) launch.py --mode=check $(DEMO_CFG) --weights=$(DEMO)/export/generator.safetensors
	@echo "== 5/6 predict: validation images with the detector's boxes (score >= 0.5)"
	$(PY) launch.py --mode=predict $(DEMO_CFG) --weights=$(DEMO)/export/generator.msgpack \
	  --input=$(DEMO_DATA)/images/val2017 --config.data.image_threshold=0.5 \
	  --boxes=$(DEMO_DATA)/person_detection_results/COCO_val2017_detections_AP_H_56_person.json \
	  --out=$(DEMO)/predictions
	@echo "== 6/6 result"
	@$(PY) -c "import glob, json, os; \
	  files = glob.glob('$(DEMO_RUN)/eval/results_*.json'); \
	  f = max(files, key=lambda p: int(os.path.basename(p)[8:-5])); r = json.load(open(f)); \
	  print('demo: COCO AP %.3f (AP50 %.3f, AR %.3f) at step %d, synthetic val2017 with detector boxes, DARK decoding' \
	        % (r['AP'], r['Ap .5'], r['AR'], r['step'])); \
	  print('pictures: $(DEMO)/predictions/*.pose.png; curves: $(DEMO_RUN)/curves.png; ' \
	        'TensorBoard: --logdir $(DEMO_RUN)')"

bench: $(STAMP)
	$(PY) benchmarks/forward.py --dtype float32,bfloat16

clean:
	rm -rf $(VENV) demo_out .pytest_cache
