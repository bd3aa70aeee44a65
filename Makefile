# Two commands do everything: `make run` (the main job) and `make test`.
# Each creates .venv on first use and installs the project (CPU torch first).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SEED ?= 0

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

RUN := runs/quickstart__s$(SEED)__$(shell date +%Y%m%d-%H%M%S)

# the main job: train a small janus-dqn on Janus-LOB-v0, then evaluate it against the baselines
run: $(STAMP)
	$(BIN)/python train.py --env Janus-LOB-v0 --algo janus-dqn --timesteps 6000 --seed $(SEED) \
		--run-dir runs --run-name $(notdir $(RUN))
	$(BIN)/python evaluate.py $(RUN) --scenarios ou,regime,flash_crash --episodes 2 --baselines all
	@echo "TensorBoard: $(BIN)/tensorboard --logdir $(RUN)    plots: $(RUN)/eval/*.png"

test: $(STAMP)
	$(BIN)/python -m pytest -q $(if $(CI),-m "not slow",)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_env.py
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/stylized_facts.py

clean:
	rm -rf $(VENV) build *.egg-info
