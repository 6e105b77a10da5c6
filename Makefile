# The few commands a person types. Everything runs inside .venv, created on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_ITEMS ?= 600

.PHONY: setup setup-dev demo serve worker test lint bench load clean

# Reinstall only when a requirements file changed (the stamp names their hash).
STAMP = $(VENV)/.installed-$(shell cat requirements.txt | sha1sum | cut -c1-12)
DEV_STAMP = $(VENV)/.installed-dev-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(STAMP)

setup: $(STAMP)

setup-dev: $(DEV_STAMP)

# Demo: SQLite and media under ./var, background work in-process. Re-running skips finished work.
demo: setup
	DJANGO_DEBUG=1 $(PY) manage.py migrate --noinput -v 0
	DJANGO_DEBUG=1 $(PY) manage.py make_demo_catalog --n $(DEMO_ITEMS) --seed 0
	DJANGO_DEBUG=1 $(PY) manage.py build_variants
	DJANGO_DEBUG=1 $(PY) manage.py make_gold_cards
	DJANGO_DEBUG=1 $(PY) manage.py evaluate
	@echo "vsearch is at http://$(HOST):$(PORT)/  (leaderboard: /leaderboard/, staff: /staff/ after 'manage.py createsuperuser')"
	DJANGO_DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT)

# Prometheus multiprocess mode: gunicorn's workers and the Celery worker (build durations) write their metrics into
# this folder, and /metrics adds them up (vsearch_site/gunicorn.conf.py).
PROMETHEUS_DIR ?= $(or $(VSEARCH_DATA_DIR),var)/prometheus

# Production profile: gunicorn + a Celery worker with beat inside it (the periodic resend of builds that found
# the broker down), PostgreSQL and Redis from the environment. With more workers, give one of them --beat
# (or run `celery -A vsearch_site beat`) and start the others with `make worker`.
serve: setup
	@test -n "$$DATABASE_URL" || { echo "make serve needs DATABASE_URL=postgres://... (see README)"; exit 2; }
	@test -n "$$REDIS_URL" || { echo "make serve needs REDIS_URL=redis://... (see README)"; exit 2; }
	$(PY) manage.py check --deploy
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py collectstatic --noinput -v 0
	@mkdir -p $(PROMETHEUS_DIR)
	PROMETHEUS_MULTIPROC_DIR=$(PROMETHEUS_DIR) $(VENV)/bin/celery -A vsearch_site worker --beat -l info --concurrency 1 & \
	  trap 'kill $$!' EXIT INT TERM; \
	  PROMETHEUS_MULTIPROC_DIR=$(PROMETHEUS_DIR) VSEARCH_BIND=$(HOST):$(PORT) \
	  $(VENV)/bin/gunicorn -c vsearch_site/gunicorn.conf.py vsearch_site.wsgi

worker: setup
	@mkdir -p $(PROMETHEUS_DIR)
	PROMETHEUS_MULTIPROC_DIR=$(PROMETHEUS_DIR) $(VENV)/bin/celery -A vsearch_site worker -l info --concurrency 1

test: $(DEV_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

# Benchmarks (not tests): prints tables and writes docs/BENCHMARKS.md. BENCH_ARGS=--quick for a short run.
bench: $(DEV_STAMP)
	$(PY) -m bench.run_all $(BENCH_ARGS)

# Load test of the production profile (gunicorn, PostgreSQL, Redis on 127.0.0.1): votes/s, latency, exactly-once checks.
# LOAD_ARGS="--quick" for 10 s; "--workers 3 --clients 16 --duration 60" to try a configuration.
load: $(DEV_STAMP)
	$(PY) -m bench.load $(LOAD_ARGS)

clean:
	rm -rf var .pytest_cache .ruff_cache
