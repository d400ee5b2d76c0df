"""Property-based fuzzing: random small networks in both I/O styles, every rounding and overflow
mode, widths 1-64, zero and extreme weights, inputs at the format's extremes, random gaps and
stalls, stall or credit flow control: RTL (Amaranth simulator) == reference == exact Fraction
evaluation, and latency and cycles per inference exactly as reported.

``NNHDL_FUZZ=long`` (``make fuzz``) runs the long profile (at least 1,000 models); the default
profile is fast enough for ``make test``. Failures are shrunk by hypothesis to a small model.
"""

import os

from hypothesis import HealthCheck, given, settings

from .models import check_model, cnns, mlps, runs

LONG = os.environ.get("NNHDL_FUZZ") == "long"
settings.register_profile("nnhdl-fuzz-fast", max_examples=50, deadline=None, derandomize=True,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("nnhdl-fuzz-long", max_examples=int(os.environ.get("NNHDL_FUZZ_MODELS", 600)),
                          deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
PROFILE = settings.get_profile("nnhdl-fuzz-long" if LONG else "nnhdl-fuzz-fast")


@PROFILE
@given(runs(mlps()))
def test_fuzz_mlp(run):
    check_model(run)


@PROFILE
@given(runs(cnns()))
def test_fuzz_cnn(run):
    check_model(run)
