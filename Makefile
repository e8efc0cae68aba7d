# The two commands the README opens with: `make demo` and `make test`.
# Each creates an isolated environment in .venv (Python 3.11, brian2 2.7.1, torch) on first use and reuses it.
# `make test312` runs the suite on the other pin (Python >= 3.12, brian2 2.10.1) in .venv312, without torch.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test312 full clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch first, by exact version: on these machines that picks the local CPU wheel.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[test,torch]'
	touch $(STAMP)

# pyenv's python3.12 shim refuses to run until a version is selected (pyenv exec: also when its shims
# are not on PATH); without pyenv, a plain python3.12.
PYTHON312 ?= $(if $(shell command -v pyenv 2>/dev/null),PYENV_VERSION=3.12.1 pyenv exec python3.12,python3.12)
VENV312 := .venv312
STAMP312 := $(VENV312)/.installed

# No torch extra: torch for 3.12 is a multi-GB download. Tests that need torch skip and say why.
$(STAMP312): pyproject.toml
	test -x $(VENV312)/bin/python || $(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/pip install --quiet --upgrade pip
	$(VENV312)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP312)

demo: $(STAMP)
	$(VENV)/bin/bioconv demo

full: $(STAMP)
	$(VENV)/bin/bioconv demo --full

test: $(STAMP)
	$(VENV)/bin/python -m pytest

test312: $(STAMP312)
	$(VENV312)/bin/python -m pytest

clean:
	rm -rf $(VENV) $(VENV312) results build
