"""A linear-time combinational-cycle check for Amaranth netlists, used while exporting.

Amaranth (0.5) checks every netlist for combinational cycles bit by bit: for each output bit of an
adder it visits every operand bit below it, so a ``w``-bit adder costs ``O(w**2)`` steps, and on a
large network the check was about 30 % of the RTLIL export (1.1 s of 6.7 s on the 16-bit jet
tagger). :func:`cells_acyclic` checks the same netlist at the level of cells: cell ``A`` depends
on cell ``B`` if any input of ``A`` that can reach its outputs combinationally (for a flip-flop
only its clock and asynchronous reset; for every other cell all of its inputs) is driven by ``B``.
Those edges include every bit-level edge, so a netlist without a cell-level cycle has no
combinational cycle; when it finds one (which may be a false alarm, e.g. two bits of one
:class:`~amaranth.hdl.Cat` feeding each other), :func:`fast_cycle_check` falls back to Amaranth's
own exact check, which raises its usual error naming the cycle. Nothing else changes: the
netlist, and the RTLIL written from it, are the same.
"""

from contextlib import contextmanager

__all__ = ["cells_acyclic", "fast_cycle_check"]


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
def fast_cycle_check():
    """Within this context, Amaranth's netlists are checked for combinational cycles with
    :func:`cells_acyclic` first and with Amaranth's own check only when that cannot rule a cycle
    out. An Amaranth whose internals differ keeps its own check."""
    try:
        from amaranth.hdl import _nir
        original = _nir.Netlist.check_comb_cycles
    except (ImportError, AttributeError):
        yield
        return

    def check_comb_cycles(netlist):
        try:
            acyclic = cells_acyclic(netlist)
        except (_Cycle, AttributeError, KeyError, TypeError):
            acyclic = False
        if not acyclic:
            original(netlist)

    _nir.Netlist.check_comb_cycles = check_comb_cycles
    try:
        yield
    finally:
        _nir.Netlist.check_comb_cycles = original
