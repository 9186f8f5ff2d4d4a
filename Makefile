# `make run` and `make test` each work from a fresh clone: they create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FASHION_DIR := /usr/share/datasets/fashion-mnist
RUN_OUT ?= runs/fashion-mnist-fast
RUN_MINUTES ?= 11

.PHONY: run test test-long test-all venv fashion-mnist browser clean

venv: $(BIN)/nin

$(BIN)/nin: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Debian's package holds the original Fashion-MNIST files; without root or apt, `nin` downloads them.
fashion-mnist:
	@if [ ! -f $(FASHION_DIR)/t10k-labels-idx1-ubyte.gz ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null \
		|| echo "could not install dataset-fashion-mnist; nin will download Fashion-MNIST instead"; \
	fi

# The main job: nin-mnist on Fashion-MNIST with the fast recipe and no dropout, the rate annealed over
# RUN_MINUTES of training so that it ends on time on any CPU (the experiment fashion-mnist-make-run, whose
# record is in results/; tests/test_reproduce.py keeps the two the same); `nin train` ends by printing the
# test accuracy.
run: venv fashion-mnist
	$(BIN)/nin train --dataset fashion-mnist --preset nin-mnist --recipe fast --dropout 0 --anneal-by-time --time-budget-minutes $(RUN_MINUTES) --epochs 30 --out $(RUN_OUT) --overwrite

# The report test opens a report in headless Chromium: Debian's chromium and chromium-driver.
browser:
	@if ! command -v chromedriver >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get install -y -qq chromium chromium-driver || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)) >/dev/null \
		|| echo "could not install chromium; the report test will fail"; \
	fi

# The quick suite: every subcommand and module once, in minutes. The long end-to-end tests (marked `long`:
# CIFAR training, test-set evaluations of the CIFAR models, GPU dry runs, kill and resume, torchrun) are the
# second tier; `make test-all` runs both, as CI does.
test: venv browser fashion-mnist
	$(BIN)/python -m pytest -q -m "not long"

test-long: venv browser fashion-mnist
	$(BIN)/python -m pytest -q -m long

test-all: test test-long

clean:
	rm -rf $(VENV) runs
