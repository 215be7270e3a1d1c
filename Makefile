# dsvl-data: `make demo` builds the demo corpus and trains the tiny model on it; `make test` runs the
# tests. Both do their own set-up (apt packages, .venv, bundled models).
PY := .venv/bin/python
export RAY_USAGE_STATS_ENABLED := 0
export PYTHONHASHSEED := 0

.PHONY: setup test demo bench lint clean

setup: .venv/.setup-done

.venv/.setup-done: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

test: setup
	$(PY) -m pytest -q -p no:cacheprovider --durations=30 tests

demo: setup
	bash scripts/demo.sh

bench: setup
	$(PY) -m bench.run $(BENCH)

lint: setup
	$(PY) -m ruff check pipelines operators taxonomy model train tests bench

clean:
	rm -rf out bench/results/*.tmp
