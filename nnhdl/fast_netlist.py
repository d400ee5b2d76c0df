"""Amaranth's netlist, built faster while exporting, and the same.

Two things make Amaranth (0.5) slow on nnhdl's large datapaths, and :func:`fast_netlist`
replaces both for the duration of a conversion, without changing what is built:

- Its per-net constructors validate every net (``Net.from_cell`` asserts its range,
  ``Value(...)`` checks each net's type, ``Netlist.resolve_value`` asserts each net's type):
  internal consistency checks whose cost is about a sixth of converting a large layer. Within
  the context they are the same constructors without the checks.
- Amaranth checks every netlist for combinational cycles bit by bit: for each output bit of an
  adder it visits every operand bit below it, so a ``w``-bit adder costs ``O(w**2)`` steps (on
  the 16-bit jet tagger, 1.1 s of a 6.7 s export). :func:`cells_acyclic` checks the same netlist
  at the level of cells: cell ``A`` depends on cell ``B`` if any input of ``A`` that can reach
  its outputs combinationally (for a flip-flop only its clock and asynchronous reset; for every
  other cell all of its inputs) is driven by ``B``. Those edges include every bit-level edge, so
  a netlist without a cell-level cycle has no combinational cycle; when it finds one (which may
  be a false alarm, e.g. two bits of one signal feeding each other), Amaranth's own exact check
  runs, and raises its usual error naming the cycle.

The netlist, and the RTLIL written from it, are the same byte for byte (the tests compare them).
Both are upstream candidates; until then this is contained here.
"""

from contextlib import contextmanager

__all__ = ["cells_acyclic", "fast_netlist"]


def cells_acyclic(netlist):
    """True if the cell-level dependency graph of Amaranth netlist ``netlist`` (before its nets
    are resolved) has no cycle, which proves it has no combinational cycle; False if it may have
    one (or the netlist is not what this check knows)."""
    from amaranth.hdl import _nir

    connections = netlist.connections
    final = {}  # late net -> the cell or constant net it stands for

    def resolve(net):
        if net >= 0:
            return net
        if net in final:
            return final[net]
        chain = []
        while net < 0 and net not in final:
            if len(chain) > len(connections):  # a loop of signals assigned to each other
                raise _Cycle
            chain.append(net)
            net = connections[net]
        net = final.get(net, net)
        for late in chain:
            final[late] = net
        return net

    cells = netlist.cells
    deps = [()] * len(cells)
    for index, cell in enumerate(cells):
        if isinstance(cell, _nir.FlipFlop):
            nets = (cell.clk, cell.arst)
        else:
            nets = cell.input_nets()
        found = {resolve(net) >> 16 for net in nets}
        found.discard(0)  # constants and the top-level inputs
        if found:
            deps[index] = found
    # Kahn's algorithm on cell -> dependency edges
    users = [[] for _ in cells]
    pending = [0] * len(cells)
    for index, found in enumerate(deps):
        pending[index] = len(found)
        for dep in found:
            users[dep].append(index)
    ready = [index for index, count in enumerate(pending) if count == 0]
    done = 0
    while ready:
        index = ready.pop()
        done += 1
        for user in users[index]:
            pending[user] -= 1
            if pending[user] == 0:
                ready.append(user)
    return done == len(cells)


class _Cycle(Exception):
    pass


@contextmanager
def fast_netlist():
    """Within this context, Amaranth's netlists are built with the unchecked net constructors and
    checked for combinational cycles with :func:`cells_acyclic` first (Amaranth's own check only
    when that cannot rule a cycle out). An Amaranth whose internals differ keeps its own code."""
    try:
        from amaranth.hdl import _nir
        net, value, netlist = _nir.Net, _nir.Value, _nir.Netlist
        saved = [(net, "from_cell", net.__dict__["from_cell"]), (value, "__new__", value.__dict__["__new__"]),
                 (netlist, "resolve_value", netlist.__dict__["resolve_value"]),
                 (netlist, "check_comb_cycles", netlist.__dict__["check_comb_cycles"])]
    except (ImportError, AttributeError, KeyError):
        yield
        return
    original_check = netlist.check_comb_cycles
    new_int, new_tuple = int.__new__, tuple.__new__

    def from_cell(cls, cell, bit):
        return new_int(cls, (cell << 16) | bit)

    def new_value(cls, nets=()):
        if type(nets) is net:
            return new_tuple(cls, (nets,))
        return new_tuple(cls, nets)

    def resolve_value(self, nets):
        connections = self.connections
        out = []
        for n in nets:
            while n < 0:  # a late net: follow it to its driver
                n = connections[n]
            out.append(n)
        return new_tuple(value, out)

    def check_comb_cycles(self):
        try:
            acyclic = cells_acyclic(self)
        except (_Cycle, AttributeError, KeyError, TypeError):
            acyclic = False
        if not acyclic:
            original_check(self)

    net.from_cell = classmethod(from_cell)
    value.__new__ = staticmethod(new_value)
    netlist.resolve_value = resolve_value
    netlist.check_comb_cycles = check_comb_cycles
    try:
        yield
    finally:
        for owner, name, attribute in saved:
            setattr(owner, name, attribute)
