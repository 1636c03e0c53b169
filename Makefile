# Two commands matter: `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What is installed in .venv: the runtime requirements (run, demo), and on top
# of them the development tools (test, lint, bench, attack, soak).
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check
ARGS ?=

.PHONY: install install-dev run test lint coverage demo demo-market replay soak bench attack clean docker-build docker-up docker-demo docker-down

install: $(RUNTIME)

install-dev: $(DEV)

# Each reinstalls only when its requirements file changed.
$(RUNTIME): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements.txt
	touch $@

$(DEV): $(RUNTIME) requirements-dev.txt
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

run: install
	$(BIN)/python -m binance_exporter $(ARGS)

test: install-dev
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report
	$(MAKE) --no-print-directory lint

lint: install-dev
	$(BIN)/pylint binance_exporter test bench/*.py docs/*.py

coverage: install-dev
	$(BIN)/coverage html
	@echo "open htmlcov/index.html"

# The simulator and the exporter against it, in stream mode: live books and
# values at http://localhost:$(PORT)/metrics within seconds, with no network. The
# exporter starts once the simulator answers GET /api/v3/ping; if the
# simulator cannot start, the demo stops at once with its one-line error.
PORT ?= 8080
SIM_PORT ?= 9999
SIM_STREAM_PORT ?= 9443
SIM_URL = http://127.0.0.1:$(SIM_PORT)
ANSWERS = $(BIN)/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' 2>/dev/null
# $(1): the target; $(2): the command serving a fake Binance on SIM_PORT and SIM_STREAM_PORT.
define exporter_against
	@if $(ANSWERS) $(SIM_URL)/api/v3/ping; then \
		echo "make $(1): port $(SIM_PORT) is in use (a demo running already?); choose another: make $(1) SIM_PORT=..." >&2; \
		exit 2; \
	fi; \
	$(2) --port $(SIM_PORT) --stream-port $(SIM_STREAM_PORT) & sim=$$!; \
	trap 'kill $$sim 2>/dev/null' EXIT INT TERM; \
	for attempt in $$(seq 50); do \
		kill -0 $$sim 2>/dev/null || { wait $$sim; exit $$?; }; \
		$(ANSWERS) $(SIM_URL)/api/v3/ping && break; \
		[ $$attempt -lt 50 ] || { echo "make $(1): the fake Binance did not answer at $(SIM_URL)" >&2; exit 1; }; \
		sleep 0.1; \
	done; \
	$(BIN)/python -m binance_exporter --base-url $(SIM_URL) --stream-url ws://127.0.0.1:$(SIM_STREAM_PORT) --port $(PORT) \
		--update-interval 8 --rank-interval 30 $(ARGS)
endef

demo: install
	$(call exporter_against,demo,$(BIN)/python -m binance_exporter.fake.simulator)

# The whole fake market (about 1,500 symbols, skewed like Binance's) and the
# exporter keeping a live book of every TRADING symbol, its snapshots paced at
# 4,000 request weight a minute: make demo-market [ARGS="--shard 1/2"].
demo-market: install
	$(call exporter_against,demo-market,$(BIN)/python -m binance_exporter.fake.simulator --whole-market) \
		--source stream --symbols all --weight-budget 4000

# A recording (--record DIR) served as Binance, SPEED times faster than
# recorded, and the exporter against it: make replay FILE=DIR [SPEED=10].
SPEED ?= 1
replay: install
	@[ -n "$(FILE)" ] || { echo "make replay: name the recording: make replay FILE=DIR [SPEED=10]" >&2; exit 2; }
	$(call exporter_against,replay,$(BIN)/python -m binance_exporter.replay $(FILE) --speed $(SPEED))

clean:
	rm -rf $(VENV) .coverage .coverage.* htmlcov .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Thousands of fast cycles with faults sprinkled in; memory before and after.
soak: install-dev
	$(BIN)/python bench/soak.py $(ARGS)

# The stack in docker/ (needs a Docker engine): the exporter, Prometheus and Grafana.
COMPOSE := docker compose -f docker/docker-compose.yml

docker-build:
	docker build -f docker/Dockerfile -t binance-exporter:local .

docker-up: docker-build
	$(COMPOSE) up -d

docker-demo: docker-build
	$(COMPOSE) --env-file docker/demo.env --profile demo up -d

docker-down:
	$(COMPOSE) --profile demo down

# The benchmark: cycle latency, weight, /metrics latency, memory and CPU (a few minutes).
bench: install-dev
	$(BIN)/python bench/bench.py $(ARGS)

# Attacks on the exporter's HTTP server, each beside a normal scraper (about 3 minutes).
attack: install-dev
	$(BIN)/python bench/attack.py $(ARGS)
