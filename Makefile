# Candor: two commands do all setup.
#   make run    create .venv, install the pinned stack, seed the demo clinic when the database is empty,
#               and serve the app on http://localhost:8501
#   make test   same .venv; install system test tools when possible (chromium, postgresql); run pytest
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: run test check install demo bench clean-venv

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m analysis demo --if-empty

run: demo
	@echo "Candor on http://localhost:$(PORT)  (demo clinic, if it was seeded: demo-only sign-in" \
	      "clinician@demo.candor, director@demo.candor, consult@demo.candor, admin@demo.candor;" \
	      "password: the CANDOR_DEMO_PASSWORD given at seeding, default candor-demo)"
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true

test: $(STAMP) check
	bash scripts/system-deps.sh
	$(PY) -m pytest

# the floors' import contracts (pyproject.toml [tool.importlinter]), lint ([tool.ruff.lint]) and
# mypy --strict over every file it lists ([tool.mypy] files)
check: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) benchmarks/photo_speed.py
	$(PY) benchmarks/pose_accuracy.py
	$(PY) benchmarks/lighting_accuracy.py
	$(PY) benchmarks/hair_counts.py
	$(PY) -m benchmarks.ingest_speed
	$(PY) benchmarks/rating_agreement.py

clean-venv:
	rm -rf $(VENV)
