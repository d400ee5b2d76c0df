"""The conversion flow: model file -> quantized graph -> Network -> files in an output folder.

Each step is a plain function (the CLI, the tests and the examples call the same ones):

- :func:`load_model` — a model file (``.keras``/``.h5``) or ``keras.Model`` to a float graph;
- :func:`compile_model` — float graph + precision config -> quantized graph;
- :func:`convert` — all the way to ``<top>.v``, ``<top>.il``, ``graph.json``/``graph.npz`` and
  ``report.json`` in an output folder (written all at once, or not at all);
- :func:`load_design` — read a converted folder back (graph, report, rebuilt Network).
"""

import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .config import PrecisionConfig
from .gcpause import collect_while, paused_gc
from .ir import Graph
from .options import OPTIONS_FILE, BuildOptions, OptionsError
from .outputs import check_design_folder, staged_outputs

__all__ = ["load_model", "load_config", "compile_model", "build_network", "convert", "load_design",
           "ConvertError", "Design", "GRAPH_STEM", "REPORT_FILE", "is_design_dir", "file_sha256"]

GRAPH_STEM = "graph"
REPORT_FILE = "report.json"


class ConvertError(ValueError):
    """The conversion cannot go on (names the file and what to do)."""


def load_model(model):
    """A float graph from a Keras model file or an in-memory ``keras.Model``."""
    from .frontend.keras import load
    return load(model)


def load_config(path=None, precision=None, softmax=None):
    """The precision configuration from a TOML file (optional), with command-line overrides."""
    if path is None:
        return PrecisionConfig.from_dict({}, default=precision, softmax=softmax)
    return PrecisionConfig.load(path, default=precision, softmax=softmax)


def _check_no_precision(graph: Graph, config, calibration):
    """A graph whose formats are final (a quantization-aware model, or a lowered graph) takes no
    precision settings: only a configuration that sets nothing is accepted."""
    from .config import DEFAULT_PRECISION
    precision = config is not None and any(key != "reuse" for entries in config.layers.values() for key in entries)
    sets = config is not None and (precision or config.default != DEFAULT_PRECISION  # reuse is a build option
                                   or config.softmax != "table")
    if sets or calibration is not None:
        raise ConvertError("the model carries its own fixed-point formats (a quantization-aware model, or an "
                           "already quantized graph): convert it without a precision configuration, "
                           "--precision or calibration inputs")


def compile_model(graph: Graph, config: PrecisionConfig = None, calibration=None) -> Graph:
    """Check the configuration's layer names against the model, then lower to a quantized graph
    (a graph whose formats are already final is returned as it is)."""
    from .passes import lower
    if graph.is_quantized:
        _check_no_precision(graph, config, calibration)
        return graph
    config = config or PrecisionConfig()
    known = []
    for op in graph.ops:
        for name in (op.origin, op.result_origin):
            if name and name not in known:
                known.append(name)
    config.check_layers(known, model=graph.meta.get("source", ""))
    return lower(graph, config, calibration)


def build_network(graph: Graph, multiplier=None, levels_per_stage=None, io=None, memory_bits=None, reuse=None,
                  layer_reuse=None, options: BuildOptions = None):
    """The :class:`nnhdl.layers.Network` of a quantized graph, for ``options``
    (:class:`~nnhdl.options.BuildOptions`) changed by the keywords that are not None (``reuse``:
    the reuse factor of every Dense; ``layer_reuse``: ``{layer name: R}`` overrides; see
    :class:`~nnhdl.layers.Network`)."""
    from .layers import Network
    return Network(graph, options, multiplier=multiplier, levels_per_stage=levels_per_stage, io=io,
                   memory_bits=memory_bits, reuse=reuse, layer_reuse=layer_reuse)


def file_sha256(path):
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hashes(folder, files):
    """``{file name: SHA-256}`` of every file named in ``files`` (a report's ``files``), in ``folder``."""
    return {name: file_sha256(Path(folder) / name) for name in files.values()}


@dataclass
class Design:
    """A converted network: quantized graph, build options, its Network component (``None`` when
    loaded without building it) and the report."""
    graph: Graph
    network: object
    report: dict = field(default_factory=dict)
    outdir: Path = None
    options: BuildOptions = None

    @property
    def top(self):
        return self.report.get("top", self.graph.name)


def is_design_dir(path):
    path = Path(path)
    return path.is_dir() and (path / f"{GRAPH_STEM}.json").exists()


@paused_gc()  # (one pause for the whole conversion: see nnhdl.gcpause)
def convert(model, outdir, *, config=None, multiplier="cse", levels_per_stage=2, top=None, calibration=None,
            step=None, verilog=True, rtlil=True, io=None, memory_bits=None, force=False, family=None,
            clock_mhz=None, reuse=None, fit=None, flow_control=None):
    """Convert ``model`` (path, ``keras.Model`` or float Graph) into ``outdir``.

    ``family`` (``"ice40"``, ``"ecp5"``, ``"xc7"``) with an optional target ``clock_mhz``: registers
    are placed by the family's estimated delays (:class:`nnhdl.layers.pipeline.DelayModel`) instead
    of every ``levels_per_stage`` adder levels.

    ``io``: ``"parallel"`` or ``"stream"`` (see :class:`nnhdl.layers.Network`); default: the
    configuration's ``io``, else parallel. ``memory_bits``: line buffers at least this large are
    block RAM (default :data:`nnhdl.options.LINE_BUFFER_MEMORY_BITS`). The options are checked and
    saved as ``options.json`` (:class:`~nnhdl.options.BuildOptions`). ``reuse``: the reuse
    factor of every Dense without a ``reuse`` key in the configuration (default 1: fully parallel).

    ``flow_control``: ``"stall"`` (default) or ``"credit"`` (:class:`~nnhdl.options.FlowControl`).

    ``fit``: a board name (``nnhdl boards``): the reuse factor of every Dense layer whose
    configuration does not set a number (``reuse = "auto"`` or nothing) is chosen so that the
    estimate fits the board (:mod:`nnhdl.fit`; recorded in the report's ``fit``).

    ``step(name)`` is called before each stage (for progress display). Returns a :class:`Design`.
    Nothing is written to ``outdir`` unless every stage succeeds. ``outdir`` must be new, empty or
    hold only nnhdl's files (``force=True``: write into it anyway, leaving other files alone); the
    previous nnhdl contents are replaced (see :mod:`nnhdl.outputs`).
    """
    from .export import rtlil_to_verilog, to_rtlil, verilog_name
    from .report import build_report

    step = step or (lambda name: None)
    timings = {}

    def timed(name, fn, *args, **kwargs):
        step(name)
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        timings[name] = round(time.perf_counter() - t0, 4)
        return out

    graph = model if isinstance(model, Graph) else timed("load model", load_model, model)
    if graph.is_quantized:  # already lowered, or a quantization-aware model: its formats are final
        _check_no_precision(graph, config, calibration)
        qgraph = graph
    else:
        qgraph = timed("quantize", compile_model, graph, config, calibration)
    top = verilog_name(top or qgraph.name)
    io = io or (config.io if config is not None else None) or "parallel"
    check_design_folder(outdir, force)  # before the long part
    layer_reuse = config.layer_reuse() if config is not None else {}
    auto = [name for name, r in layer_reuse.items() if r == "auto"]
    if auto and fit is None:
        raise ConvertError(f"{config.source or 'the configuration'}: [layer.{auto[0]}] reuse = \"auto\" is chosen "
                           "to fit a board: add --fit BOARD (nnhdl boards lists them), or give a number")
    fixed = {name: r for name, r in layer_reuse.items() if r != "auto"}
    try:
        options = BuildOptions.of(None, multiplier=multiplier, levels_per_stage=levels_per_stage, io=io,
                                  memory_bits=memory_bits, reuse=reuse, family=family, clock_mhz=clock_mhz,
                                  layer_reuse=tuple(fixed.items()), flow_control=flow_control)
    except OptionsError as e:
        raise ConvertError(str(e)) from None
    fitted = None
    if fit is not None:
        fitted = timed("fit reuse factors", _fit, qgraph, options, fit, fixed)
        options = options.replace(layer_reuse=tuple(fitted.layer_reuse.items()),
                                  logic_multipliers=fitted.logic_multipliers)
        if fitted.memory_bits is not None:
            options = options.replace(memory_bits=fitted.memory_bits)

    def build():
        network = build_network(qgraph, options=options)
        network.build()  # builds the layers (their searches on the cores) and checks the timing now
        return network

    network = timed("build RTL", build)
    files = {}
    with staged_outputs(outdir, design=True, force=force, top=top) as tmp:
        if verilog or rtlil:  # the RTLIL (Amaranth), then the Verilog from it (Yosys)
            text_il = timed("export RTLIL", to_rtlil, network, top)
            if verilog:
                # (while Yosys writes it, this process catches up with its paused garbage collection)
                text = timed("export Verilog", collect_while, partial(rtlil_to_verilog, text_il, network, top))
                (tmp / f"{top}.v").write_text(text)
                files["verilog"] = f"{top}.v"
            (tmp / f"{top}.il").write_text(text_il)
            files["rtlil"] = f"{top}.il"
        step("write report")
        qgraph.save(tmp / GRAPH_STEM)
        options.save(tmp)
        files["graph"] = f"{GRAPH_STEM}.json"
        files["constants"] = f"{GRAPH_STEM}.npz"
        files["options"] = OPTIONS_FILE
        report = build_report(qgraph, network, top=top, timings=timings, files=files,
                              config=config or PrecisionConfig(),
                              verilog_lines=text.count("\n") if verilog else None, sha256=_hashes(tmp, files))
        if fitted is not None:
            report["fit"] = {"board": fit, "layer_reuse": fitted.layer_reuse, "estimated": fitted.needed,
                             "logic_multipliers": list(fitted.logic_multipliers),
                             "line_buffers_in_block_ram": fitted.memory_bits is not None,
                             "available": fitted.available, "usable_share_of_LUT_FF": fitted.margin}
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    return Design(qgraph, network, report, Path(outdir), options)


def _fit(graph, options, board, fixed):
    """Reuse factors that fit ``board`` (see :mod:`nnhdl.fit`); errors name the board and the fix."""
    from .boards.targets import TargetError, get_target
    from .fit import FitError, fit_reuse
    try:
        return fit_reuse(graph, options, get_target(board), fixed)
    except (TargetError, FitError) as e:
        raise ConvertError(f"--fit {board}: {e}") from None


def delay_model(family, clock_mhz):
    """The :class:`~nnhdl.layers.pipeline.DelayModel` for ``family`` and ``clock_mhz`` (None if
    neither is given)."""
    from .layers.pipeline import DelayModel
    if family is None and clock_mhz is None:
        return None
    if family is None:
        raise ConvertError(f"a target clock ({clock_mhz} MHz) needs an FPGA family for its delay model: "
                           f"add --family {' / '.join(DelayModel.FAMILIES)}")
    try:
        return DelayModel(family, clock_mhz)
    except ValueError as e:
        raise ConvertError(str(e)) from None


def load_design(outdir, build=True, require_report=None):
    """Read a folder written by :func:`convert`: its graph, build options (``options.json``) and
    report; with ``build``, rebuild its Network with the same options.

    ``require_report`` (default: ``build``):
    a missing ``report.json`` is an error; otherwise the report is ``{}``. A report that is not a
    JSON object is always an error (:class:`ConvertError`, naming the file and the fix)."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        raise ConvertError(f"{outdir}: no such folder; convert a model first: nnhdl convert MODEL -o {outdir}")
    if not is_design_dir(outdir):
        raise ConvertError(f"{outdir} has no {GRAPH_STEM}.json: it is not a folder written by 'nnhdl convert'")
    if not (outdir / f"{GRAPH_STEM}.npz").is_file():
        raise ConvertError(f"{outdir / GRAPH_STEM}.npz is missing (the graph's weights and constants); convert the "
                           f"model again: nnhdl convert MODEL -o {outdir}")
    graph = Graph.load(outdir / GRAPH_STEM)
    report = {}
    path = outdir / REPORT_FILE
    if path.exists():
        try:
            report = json.loads(path.read_text())
        except (ValueError, OSError) as e:
            raise ConvertError(f"{path}: not valid JSON ({e}); convert the model again") from None
        if not isinstance(report, dict):
            raise ConvertError(f"{path}: not an nnhdl report (a JSON {type(report).__name__}, not an object); "
                               "convert the model again")
    elif build if require_report is None else require_report:
        raise ConvertError(f"{path} is missing (it holds the build options, latency and file hashes); "
                           f"convert the model again: nnhdl convert MODEL -o {outdir}")
    options = _load_options(outdir, report, path)
    network = build_network(graph, options=options) if build else None
    return Design(graph, network, report, outdir, options)


def _load_options(outdir, report, report_path):
    """The folder's :class:`BuildOptions`: ``options.json``, or (folders converted before it
    existed) the report's ``options``."""
    try:
        if (outdir / OPTIONS_FILE).exists():
            return BuildOptions.load(outdir)
        options = report.get("options", {})
        if not isinstance(options, dict):
            raise ConvertError(f"{report_path}: 'options' is not an object; convert the model again")
        return BuildOptions.from_report(options)
    except OptionsError as e:
        raise ConvertError(str(e)) from None
