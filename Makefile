# rental-fsm: every target a newcomer needs. Python deps go into a virtualenv (.venv).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test diagrams diagrams-check lint typecheck demo chaos bench profile clean

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,demo,dev]'
	touch $(STAMP)

## install: create .venv and install the package with its test and dev extras
install: $(STAMP)

## test: the whole suite, against Redis and RabbitMQ on 127.0.0.1 (skipped without them, unless CI=true)
test: $(STAMP) diagrams-check
	$(PY) -m pytest $(PYTEST_ARGS)

## diagrams: regenerate diagrams/rental.{mmd,dot,svg} from the transition table
diagrams: $(STAMP)
	$(PY) -m rental_fsm diagram --write-all diagrams

## diagrams-check: fail when the committed diagrams are not what the table generates
diagrams-check: $(STAMP)
	$(PY) -m rental_fsm diagram --check diagrams

## lint: ruff and mypy --strict
lint: $(STAMP)
	$(VENV)/bin/ruff check --line-length 100 --select E,F,W,I,B,UP --target-version py310 rental_fsm tests examples
	$(VENV)/bin/mypy rental_fsm

typecheck: lint

## demo: a simulated fleet through every scenario of the seeds (embedded defaults; real
## Redis/RabbitMQ when RENTAL_FSM_REDIS_URL / RENTAL_FSM_AMQP_URL are set). DEMO_ARGS=--speed 10
demo: $(STAMP)
	$(PY) -m rental_fsm.demo $(DEMO_ARGS)

## chaos: a few minutes of the demo's fleet under faults (real Redis and RabbitMQ on
## 127.0.0.1 unless RENTAL_FSM_REDIS_URL / RENTAL_FSM_AMQP_URL say otherwise). CHAOS_ARGS=
chaos: $(STAMP)
	RENTAL_FSM_REDIS_URL=$${RENTAL_FSM_REDIS_URL:-redis://127.0.0.1:6379/0} \
	RENTAL_FSM_AMQP_URL=$${RENTAL_FSM_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672//} \
	$(PY) -m rental_fsm.demo.chaos $(CHAOS_ARGS)

## bench: benchmarks against baselines measured in the same run (BENCH_ARGS=--quick: small);
## installs the bench extra (matplotlib) for the PNG histograms
bench: $(STAMP)
	$(PY) -c 'import matplotlib' 2>/dev/null || $(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks $(BENCH_ARGS)

## profile: where one worker's time goes on the throughput workload (py-spy, sampling from
## outside): benchmarks/results/<date>-profile.txt. PROFILE_ARGS="--scenario latency": the
## in-process worker at 1,000 events/s instead (<date>-latency-profile.txt)
profile: $(STAMP)
	test -x $(VENV)/bin/py-spy || $(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks.profile $(PROFILE_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
