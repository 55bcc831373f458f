# mgr: two commands do all the set-up on a fresh machine (only Python 3.11 needed).
#   make demo   venv + install + SynthMG + train/test the decoupled ST-CNN on CPU
#   make test   venv + install + the test suite (slow tests: make test-slow)
#   make docs   the documentation site into site/ (make notebooks first executes the tutorials)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DOCS_STAMP := $(VENV)/.docs-stamp
SYNTH  := data/synthmg_imigue
DEMO   := experiments/synth/stcnn.yaml

.PHONY: venv demo test test-slow lint docs notebooks clean

venv: $(STAMP)

# Reinstall when the pins or the package metadata change.
$(STAMP): requirements/ci.txt setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/ci.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(SYNTH)/synthmg.json: | $(STAMP)
	$(BIN)/mgr synth --layout imigue --out $(SYNTH) --seed 0

demo: $(STAMP) $(SYNTH)/synthmg.json
	rm -rf runs/synth_stcnn
	$(BIN)/mgr fit --config $(DEMO)
	$(BIN)/mgr test --config $(DEMO) --ckpt_path runs/synth_stcnn/checkpoints/best.ckpt

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check mgr tests benchmarks
	$(BIN)/ruff format --check mgr

# Docs tools (mkdocs-material, mkdocstrings, mkdocs-jupyter, nbclient, ipykernel) on top of the
# test environment; requirements/docs.txt pins them and changes none of requirements/ci.txt.
$(DOCS_STAMP): requirements/docs.txt $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/docs.txt
	touch $@

# Execute every tutorial notebook on CPU with a fresh kernel (outputs into build/tutorials/).
notebooks: $(DOCS_STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider -o addopts="" docs/tutorials/test_tutorials.py

# The site, warnings as errors (broken links and cross-references fail); renders the executed
# notebooks of `make notebooks` when they exist, else the bare ones.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs data build site *.egg-info
