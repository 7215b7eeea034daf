# Two commands on a fresh machine: `make demo` and `make test`; each creates .venv first.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# PyTorch is optional: only the .pth tests and the torch-parity checks use it. Install the
# CPU build when the machine carries its wheel (pip's find-links); never the multi-GB CUDA one.
TORCH_CPU := torch==2.13.0+cpu
# pip warns about every package missing from the machine's extra local index: noise.
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: test demo bench clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install -q -r requirements.txt 2>&1 | $(QUIET_PIP)
	@$(PY) -m pip install -q "$(TORCH_CPU)" 2>&1 | $(QUIET_PIP) \
	  || echo "note: no local CPU PyTorch wheel; the tests that read .pth files will be skipped"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# For now the demo exercises what exists: the networks and the official weight layout.
demo: $(STAMP)
	mkdir -p demo_out
	$(PY) launch.py export --config=configs/default.py:w32 --out=demo_out/hrnet_w32_init.safetensors
	$(PY) launch.py check --config=configs/default.py:w32 --weights=demo_out/hrnet_w32_init.safetensors
	$(PY) launch.py export --config=configs/default.py:tiny --net=discriminator --out=demo_out/disc_tiny_init.npz
	$(PY) launch.py check --config=configs/default.py:tiny --net=discriminator --weights=demo_out/disc_tiny_init.npz
	$(PY) benchmarks/forward.py --preset w32 --batch 8 --iters 3 --dtype float32,bfloat16

bench: $(STAMP)
	$(PY) benchmarks/forward.py --dtype float32,bfloat16

clean:
	rm -rf $(VENV) demo_out .pytest_cache
