# Set-up and everyday commands. Everything goes into a plain venv in .venv.
#   make demo / serve: the runtime install only (core with the API and S3, every plugin; no TensorFlow)
#   make test / bench: that plus the test extras, the plugins' [train] extras and requirements-dev.txt
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet
PLUGINS := $(sort $(wildcard plugins/*))
# Plugins with a [train] extra (TensorFlow: training and .keras models).
TRAIN_PLUGINS := $(sort $(patsubst %/pyproject.toml,%,$(shell grep -l '^train *=' plugins/*/pyproject.toml)))
RUNTIME := $(VENV)/.runtime
DEV := $(VENV)/.dev

.PHONY: install install-dev demo test bench serve clean

# The Dockerfile installs the same: core[api,s3], every plugin, requirements-nodeps.txt --no-deps.
$(RUNTIME): core/pyproject.toml $(wildcard plugins/*/pyproject.toml) requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e "core[api,s3]" $(addprefix -e ,$(PLUGINS))
	$(PIP) --no-deps -r requirements-nodeps.txt
	touch $@

$(DEV): $(RUNTIME) requirements-dev.txt
	$(PIP) -e "core[api,s3,parquet,ray,report]" $(foreach p,$(TRAIN_PLUGINS),-e "$(p)[train]") -r requirements-dev.txt
	touch $@

install: $(RUNTIME)

install-dev: $(DEV)

# Analyse the bundled example photo (scikit-image's astronaut, public domain) with
# the default pipeline: no S3, no network, nothing from ../shared.
demo: install
	mkdir -p build
	$(BIN)/harerun sample-photo build/astronaut.jpg
	$(BIN)/harerun analyze build/astronaut.jpg --overlay build/astronaut-overlay.png

test: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: install-dev
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build

serve: install
	HARERUN_ANALYSIS_PROCESSES=$${HARERUN_ANALYSIS_PROCESSES:-2} $(BIN)/harerun serve --host 127.0.0.1 --port 8000
