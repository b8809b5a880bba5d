# `make run` and `make test` work on a fresh machine that has only Python 3.11.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test test-faults test-hosts soak lint format demo-model model bench batch clean gpu-check eval-check

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The pinned runtime set first, then the project itself (editable, so its console scripts run this checkout's code;
# --no-deps: requirements.txt already chose every version).
$(RUNTIME_STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUNTIME_STAMP)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## run: Redis (embedded unless REDIS_URL is set) + GPU worker + ops worker + API on http://127.0.0.1:$${PORT:-8001};
## a worker that exits is restarted, Ctrl-C stops everything
run: $(RUNTIME_STAMP)
	$(VENV)/bin/llmq-run

## test: the whole suite against real Redis, worker, HTTP server and a tiny real model; two test processes, each
## with its own Redis, worker and API (a test file stays in one process), since most tests wait on real processes
test: $(DEV_STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

## test-faults: only the fault-injection suite (kill -9, Redis restart, OOM, deadlines, SIGTERM)
test-faults: $(DEV_STAMP)
	$(PY) -m pytest -m faults

## test-hosts: the service as several hosts in network namespaces (Redis master, replica and three sentinels, API,
## GPU worker, ops; needs root): clients submit while a host dies or is cut off; prints each scenario's counts
test-hosts: $(DEV_STAMP)
	$(PY) -m tests.hosts $(ARGS)

## soak: the chaos soak (4 minutes; SOAK_SECONDS=1800 for longer, ARGS='--seed 7 --faults 20'): every kind of
## client while the GPU worker, the ops worker and Redis are killed, paused and restarted, then checks that no job
## was lost, stuck, run twice or changed; artifacts in soak-artifacts/<time>/, exit status 1 on any violation
soak: $(DEV_STAMP)
	$(PY) -m tests.soak $(if $(SOAK_SECONDS),--seconds $(SOAK_SECONDS)) $(ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## demo-model: build the random-weight demo model into ./model
demo-model: $(RUNTIME_STAMP)
	$(VENV)/bin/llmq-demo-model --out model

## model: prepare ./model (fp16/ + tokenizer/) from a local original checkpoint, converted to FP16 and checked
model: $(RUNTIME_STAMP)
	@test -n "$(SRC)" || (echo "usage: make model SRC=/path/to/checkpoint [OUT=model] [ARGS='--force --max-shard-size 2GB']"; exit 2)
	$(VENV)/bin/llmq-prepare-model "$(SRC)" --out "$(or $(OUT),model)" $(ARGS)

clean:
	rm -rf .run .pytest_cache

## eval-check: lm-evaluation-harness (requirements-eval.txt) as a client of the service: its local-completions model
## runs a generate_until and a multiple-choice task (tests/eval/tasks) against the real API and worker on the demo
## model; prints lm-eval's table. Its venv .venv-eval sees .venv's packages (torch is not installed twice).
EVAL_VENV := .venv-eval
eval-check: $(DEV_STAMP)
	test -x $(EVAL_VENV)/bin/python || $(PYTHON) -m venv $(EVAL_VENV)
	$(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > \
		"$$($(EVAL_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/project-venv.pth"
	$(EVAL_VENV)/bin/python -m pip install --quiet -r requirements-eval.txt
	$(EVAL_VENV)/bin/python -m pytest -p no:xdist -s tests/eval

## bench: the service against the raw batching engine and a one-at-a-time baseline; appends to bench/RESULTS.md
bench: $(DEV_STAMP)
	$(PY) -m bench.run_bench

## batch: send IN (JSONL, .txt or .csv) to the running service and collect results into OUT (resumable)
batch: $(RUNTIME_STAMP)
	@test -n "$(IN)" -a -n "$(OUT)" || (echo "usage: make batch IN=prompts.txt OUT=results.jsonl [ARGS='--max-tokens 64']"; exit 2)
	$(VENV)/bin/llmq-submit-batch "$(IN)" "$(OUT)" $(ARGS)

## gpu-check: on a GPU box (its own python3 with CUDA torch; wheels from scripts/fetch_gpu_wheels.sh in .whl/):
## the service with a Llama-3.2-3B-shaped FP16 model; figures printed and written to gpu-check-results/. Run as a
## module of this checkout, so the box needs no install of the project (`llmq-gpu-check` where it is installed).
GPU_PYTHON ?= python3
gpu-check:
	@if [ -d .whl ]; then $(GPU_PYTHON) -m pip install --quiet --no-index --no-deps --no-compile --upgrade \
		--target .gpu-site .whl/*.whl; fi
	PYTHONPATH=$(CURDIR)/.gpu-site$${PYTHONPATH:+:$$PYTHONPATH} $(GPU_PYTHON) -m scripts.gpu_check $(ARGS)
