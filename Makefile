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
	$(BIN)/python train.py --env Janus-LOB-v0 --algo janus-dqn --timesteps 4000 --seed $(SEED) \
		--run-dir runs --run-name $(notdir $(RUN))
	$(BIN)/python evaluate.py $(RUN) --scenarios ou,regime,flash_crash --episodes 6 --baselines all
	@echo "TensorBoard: $(BIN)/tensorboard --logdir $(RUN)    plots: $(RUN)/eval/latest/*.png"

test: $(STAMP)
	$(BIN)/python -m pytest -q $(if $(CI),-m "not slow",)

# benchmarks compare against gym-anytrading, gym-trading-env, pyts and LTNtorch, which are not project
# dependencies: they live in their own venv
BENCH_VENV := .bench-venv
$(BENCH_VENV)/.installed: benchmarks/requirements-bench.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet -r benchmarks/requirements-bench.txt
	touch $@

bench: $(STAMP) $(BENCH_VENV)/.installed
	PYTHONPATH=. $(BENCH_VENV)/bin/python benchmarks/bench_env.py --json benchmarks/out/bench_env.json
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/stylized_facts.py
	$(BIN)/python benchmarks/bench_per.py
	$(BIN)/python benchmarks/bench_shield.py
	PYTHONPATH=. $(BENCH_VENV)/bin/python benchmarks/bench_gaf.py
	$(BIN)/python benchmarks/bench_multi_agent.py
	$(BIN)/python benchmarks/bench_agent.py

clean:
	rm -rf $(VENV) build *.egg-info
	find janus_env wrappers replay agents -name '*.nb[ic]' -delete
