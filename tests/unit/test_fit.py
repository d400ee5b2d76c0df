"""Reuse factors chosen to fit a board (nnhdl.fit, convert --fit, reuse = "auto")."""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from nnhdl.boards.targets import TARGETS
from nnhdl.cli import main
from nnhdl.config import PrecisionConfig
from nnhdl.convert import ConvertError, build_network, convert
from nnhdl.fit import MARGIN, FitError, fit_reuse
from nnhdl.options import BuildOptions

from ..conftest import make_mlp


def small_board(lut, ff, dsp=8, bram=30):
    base = TARGETS["ice40-up5k"]
    return dataclasses.replace(base, name="tiny", resources={"LUT": lut, "FF": ff, "DSP": dsp, "BRAM": bram,
                                                              "BRAM_bits": bram * 4096})


@pytest.fixture(scope="module")
def graph():
    return make_mlp(__import__("numpy").random.default_rng(3), [16, 24, 8, 3], ["relu", "relu"],
                    {"precision": "fixed<10,4>"})


def test_parallel_when_it_fits(graph):
    result = fit_reuse(graph, BuildOptions(), small_board(10 ** 6, 10 ** 6))
    assert set(result.layer_reuse.values()) == {1} and result.steps == []


def test_folds_the_largest_layers_until_the_estimate_fits(graph):
    parallel = fit_reuse(graph, BuildOptions(), small_board(10 ** 6, 10 ** 6)).needed
    board = small_board(int(parallel["LUT"] * 0.6 / MARGIN), int(parallel["FF"] * 0.6 / MARGIN), dsp=100)
    result = fit_reuse(graph, BuildOptions(), board)
    assert max(result.layer_reuse.values()) > 1
    assert result.needed["LUT"] <= board.resources["LUT"] * MARGIN
    assert result.needed["FF"] <= board.resources["FF"] * MARGIN
    assert result.steps and all(r > 1 for _, r in result.steps)
    # the largest layer (16x24) is folded first
    assert result.steps[0][0] == "fc1"


def test_a_layer_the_configuration_sets_is_kept(graph):
    parallel = fit_reuse(graph, BuildOptions(), small_board(10 ** 6, 10 ** 6)).needed
    board = small_board(int(parallel["LUT"] * 0.6 / MARGIN), int(parallel["FF"] * 0.6 / MARGIN), dsp=100)
    result = fit_reuse(graph, BuildOptions(), board, fixed={"fc3": 1})
    assert result.layer_reuse["fc3"] == 1 and all(name != "fc3" for name, _ in result.steps)


def test_a_network_that_fits_at_no_reuse_factor_is_refused(graph):
    with pytest.raises(FitError, match=r"does not fit tiny at any reuse factor .*larger board"):
        fit_reuse(graph, BuildOptions(), small_board(50, 50))


def test_convert_fit_records_the_choice_and_the_rebuilt_design_matches(graph, tmp_path):
    from nnhdl.convert import load_design
    design = convert(graph, tmp_path / "o", fit="icebreaker")
    fit = design.report["fit"]
    assert fit["board"] == "icebreaker" and fit["estimated"]["LUT"] <= fit["available"]["LUT"]
    saved = json.loads((tmp_path / "o" / "options.json").read_text())
    assert saved["layer_reuse"] == fit["layer_reuse"]
    assert load_design(tmp_path / "o").network.latency == design.network.latency


def test_auto_needs_fit(graph, tmp_path):
    config = PrecisionConfig.from_dict({"layer": {"fc1": {"reuse": "auto"}}})
    with pytest.raises(ConvertError, match=r'\[layer.fc1\] reuse = "auto" .*add --fit BOARD'):
        convert(graph, tmp_path / "o", config=config)
    assert not (tmp_path / "o").exists()


def test_cli_fit_unknown_board_is_a_clear_error(tmp_path):
    model = tmp_path / "m.keras"
    model.write_text("")
    result = CliRunner().invoke(main, ["convert", str(model), "-o", str(tmp_path / "o"), "--fit", "nosuchboard"])
    assert result.exit_code == 2


def test_short_of_dsps_the_softmax_products_go_to_logic(tmp_path):
    """A table softmax needs one multiplier per output; on a board with fewer DSPs its products are
    built from adders (saved in options.json), and the design still equals the reference."""
    import numpy as np

    from nnhdl.convert import load_design
    from nnhdl.verify import random_inputs, verify_design

    graph = make_mlp(np.random.default_rng(4), [6, 5, 4], ["relu"], {"precision": "fixed<8,3>"}, softmax=True)
    board = small_board(10 ** 6, 10 ** 6, dsp=2)
    result = fit_reuse(graph, BuildOptions(), board)
    softmax = graph.output.name
    assert result.logic_multipliers == (softmax,) and result.needed["DSP"] <= 2
    assert set(result.layer_reuse.values()) == {1}  # nothing had to be folded
    convert(graph, tmp_path / "o", fit="ice40-up5k")  # 8 DSPs: enough, the softmax keeps them
    assert load_design(tmp_path / "o", build=False).options.logic_multipliers == ()
    design = load_design(tmp_path / "o")
    design.options = design.options.replace(logic_multipliers=(softmax,))
    design.network = build_network(graph, options=design.options)
    assert dict(design.network.layers)[softmax].multipliers == 0
    result = verify_design(design, random_inputs(graph, 100), gap=0.2, stall=0.2)
    assert result.mismatch_count == 0 and result.latency_ok


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_convolutions_are_folded_too(io):
    """A CNN whose convolution is most of its logic: the fit folds the convolution (per image
    in io parallel, per window in io stream), within its largest useful reuse factor."""
    import numpy as np

    from nnhdl.layers.folded_conv import largest_reuse
    from nnhdl.passes import lower

    from ..rtl.test_cnn_layers import ImageNet

    g = (ImageNet(np.random.default_rng(4), (6, 6, 3)).conv("c1", 8, (3, 3), activation="relu")
         .pool("p", "max", (2, 2)).dense("d", 4).graph())
    q = lower(g, PrecisionConfig.from_dict({"precision": "fixed<10,4>"}))
    options = BuildOptions(io=io)
    parallel = fit_reuse(q, options, small_board(10 ** 6, 10 ** 6)).needed
    board = small_board(int(parallel["LUT"] * 0.5 / MARGIN), int(parallel["FF"] * 0.9 / MARGIN), dsp=400)
    result = fit_reuse(q, options, board)
    folds = [name for name, r in result.steps if r > 1]  # (io stream: line buffers to block RAM first)
    assert folds[0] == "c1" and 1 < result.layer_reuse["c1"] <= largest_reuse(q.op("c1"), io == "stream")
    assert all(result.needed[k] <= board.resources[k] * MARGIN for k in ("LUT", "FF"))


def test_stream_line_buffers_go_to_block_ram_before_anything_folds():
    """io stream, flip-flops short by less than the line buffers: the fit moves the line buffers
    into block RAM (no throughput lost) and folds nothing; convert applies and records it."""
    import numpy as np

    from nnhdl.passes import lower

    from ..rtl.test_cnn_layers import ImageNet

    g = (ImageNet(np.random.default_rng(5), (6, 6, 3)).conv("c1", 4, (3, 3), activation="relu")
         .pool("p", "max", (2, 2)).dense("d", 3).graph())
    q = lower(g, PrecisionConfig.from_dict({"precision": "fixed<10,4>"}))
    big = small_board(10 ** 6, 10 ** 6, dsp=10 ** 4, bram=10 ** 4)
    registers = fit_reuse(q, BuildOptions(io="stream"), big).needed
    in_ram = fit_reuse(q, BuildOptions(io="stream", memory_bits=1), big).needed
    assert in_ram["FF"] < registers["FF"] and in_ram["BRAM"] > registers["BRAM"]
    board = small_board(10 ** 6, int((in_ram["FF"] + registers["FF"]) / 2 / MARGIN), dsp=10 ** 4, bram=10 ** 4)
    result = fit_reuse(q, BuildOptions(io="stream"), board)
    assert result.steps == [("line buffers in block RAM", 0)] and result.memory_bits == 1
    assert set(result.layer_reuse.values()) == {1}


def test_ecp5_budgets_the_logic_sites_of_every_carry_chain(graph):
    """nextpnr-ecp5 packs each adder's carry chain into more logic sites than Yosys counts: the
    fit adds them (per adder) to the LUTs it budgets on an ECP5, and only there."""
    from nnhdl.estimate import estimate_layer
    from nnhdl.fit import ECP5_SITES_PER_CHAIN, _needs

    figures = build_network(graph).layers[0][1].figures()
    assert figures["adders"] > 0
    for family in ("ice40", "ecp5", "xc7"):
        extra = ECP5_SITES_PER_CHAIN * figures["adders"] if family == "ecp5" else 0
        assert _needs(figures, family, 4096)["LUT"] == estimate_layer(figures, family)["LUT"] + extra
