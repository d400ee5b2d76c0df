"""The delay model's promise on real place-and-route: a network converted with ``--family F
--clock C`` (registers placed by :class:`nnhdl.layers.pipeline.DelayModel`) reaches at least C
MHz in nextpnr (timing harness, nextpnr's target = C).

Measured 2026-12-01 (YoWASP nextpnr, timing harness, the designs below at the families' default
clocks): ECP5-85F speed 6 reached 72.5 MHz for 100 MHz (and 100.6 MHz for 150 MHz); iCE40UP5K
reached 17.0 MHz for 24 MHz. The model's LUT and carry delays leave out most of the routing
(about 1-1.7 ns between adders on ECP5 in nextpnr's critical path), so its stages hold about 1.4-1.5x
more delay than it estimates. The ECP5 constants were then calibrated on these measurements (2.8
ns per LUT level with its routing, 40 ps per carry bit, 1 ns per register) and the ECP5 case
passes; the iCE40 constants likewise (4 ns per LUT level, 400 ps per carry bit, 1.4 ns per
register: 31.7 MHz for 24 MHz, 21.6 MHz for 16 MHz).
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nnhdl.cli import main
from nnhdl.convert import convert
from nnhdl.layers.pipeline import DelayModel

from ..conftest import make_mlp

# board, family, MLP sizes (as large as fits the board's device with room for the harness)
CASES = [
    pytest.param("ulx3s-85f", "ecp5", (12, 8, 4), id="ecp5"),  # met since the ECP5 constants were calibrated
    pytest.param("icebreaker", "ice40", (8, 6, 3), id="ice40"),  # met since the iCE40 constants were calibrated
]


@pytest.mark.slow
@pytest.mark.parametrize("board, family, sizes", CASES)
def test_delay_model_clock_is_met(tmp_path, board, family, sizes):
    """An MLP with 12-bit data and dense 12-bit weights (adder trees several levels deep),
    converted for the family's default clock, meets that clock after nextpnr."""
    clock_mhz = DelayModel(family).clock_mhz
    graph = make_mlp(np.random.default_rng(7), sizes, ["relu"], {"precision": "fixed<12,4,RND,SAT>"},
                     zero_fraction=0.0)
    out = tmp_path / "mlp"
    design = convert(graph, out, family=family, clock_mhz=clock_mhz)
    assert design.report["options"]["family"] == family and design.report["options"]["clock_mhz"] == clock_mhz
    result = CliRunner().invoke(main, ["build", str(out), "--board", board, "--clock", str(clock_mhz * 1e6),
                                       "--allow-timing-fail"])
    assert result.exit_code in (0, 1), result.output
    report = json.loads((out / "build" / f"{board}-timing" / "build-report.json").read_text())
    assert report["clock_target_mhz"] == pytest.approx(clock_mhz)
    assert report["fmax_mhz"] >= clock_mhz, (f"nextpnr reached {report['fmax_mhz']:.1f} MHz, the delay model "
                                            f"promised {clock_mhz:g} MHz ({design.report['latency_cycles']} cycles)")
    assert report["timing_passed"] and result.exit_code == 0
