"""Exact cycle timing of a :class:`~nnhdl.layers.Network` from a model of its handshakes.

Each layer's control (valid bits, position counters, the padding and gathering state
machines; every component says which model it follows with ``handshake()``) is replayed transfer by transfer, without data, for a few inferences fed at full
rate into an always-ready sink. That gives, exactly as the RTL behaves:

``latency``
    cycles from an inference's first input transfer to its last output transfer, starting
    from an idle network — one that has finished its previous inference (for
    ``io="parallel"``: the sum of the layers' latencies);
``interval``
    cycles between consecutive inferences in steady state (1 for ``io="parallel"`` without
    folded layers; about the largest number of pixels any layer handles per image for
    ``io="stream"``; at least the largest interval of a :class:`~nnhdl.layers.FoldedDense`).

The RTL tests check both against simulation.
"""

from dataclasses import dataclass

__all__ = ["StreamTiming", "stream_timing", "Pipe", "Folded", "PadModel", "CollectModel", "Series",
           "window_starts"]


@dataclass(frozen=True)
class StreamTiming:
    latency: int
    interval: int
    first_output: int  # cycle of the first output transfer from idle


def window_starts(size, k, s):
    """Per input row/column index: does a pixel there complete a window (kernel ``k``, stride
    ``s``) along that axis?"""
    return [int(x >= k - 1 and (x - k + 1) % s == 0) for x in range(size)]


class Pipe:
    """A fixed-latency pipeline whose valid bit enters only when ``starts(position)`` (position
    counting accepted transfers modulo ``period``). The handshake model of every layer with a
    fixed latency (a component's ``handshake()`` returns its model)."""

    def __init__(self, latency, period=1, starts=None):
        self.valid = [False] * latency
        self.period, self.pos = period, 0
        self.starts = starts or (lambda pos: True)

    def out_valid(self):
        return self.valid[-1]

    def in_ready(self, out_ready):
        return not self.valid[-1] or out_ready

    def step(self, in_valid, out_ready):
        en = self.in_ready(out_ready)
        accept = in_valid and en
        if en:
            self.valid = [accept and self.starts(self.pos)] + self.valid[:-1]
        if accept:
            self.pos = (self.pos + 1) % self.period
        return accept


class Folded(Pipe):
    """A :class:`~nnhdl.layers.FoldedDense`: a fixed-latency pipeline that, after accepting an
    input, is ready again only in the last of its ``interval`` steps."""

    def __init__(self, latency, interval):
        super().__init__(latency)
        self.steps, self.left = interval, 0  # steps of the current inference not yet issued

    def in_ready(self, out_ready):
        return super().in_ready(out_ready) and self.left <= 1

    def step(self, in_valid, out_ready):
        en = super().in_ready(out_ready)
        accept = in_valid and self.in_ready(out_ready)
        if en:
            self.valid = [accept] + self.valid[:-1]
            self.left = self.steps if accept else max(self.left - 1, 0)
        return accept


class Series:
    """Models chained stream to stream: ready flows backwards through them (combinationally),
    valid forwards (from registers). A whole network's layers are one (:func:`stream_timing`),
    and so are the parts inside one layer (a folded stream convolution: its window, then its
    folded products)."""

    def __init__(self, *models):
        self.models = models

    def out_valid(self):
        return self.models[-1].out_valid()

    def _readies(self, out_ready):
        readies = [out_ready]
        for mdl in reversed(self.models):
            readies.insert(0, mdl.in_ready(readies[0]))
        return readies

    def in_ready(self, out_ready):
        return self._readies(out_ready)[0]

    def step(self, in_valid, out_ready):
        readies = self._readies(out_ready)
        valids = [in_valid] + [mdl.out_valid() for mdl in self.models[:-1]]
        accepted = [mdl.step(v, r) for mdl, v, r in zip(self.models, valids, readies[1:])]
        return accepted[0]


class PadModel:
    """A :class:`~nnhdl.layers.PadStream`: emits padding pixels without input, registered output."""

    def __init__(self, in_shape, padding):
        h, w, _ = in_shape
        pt, pb, pl, pr = padding
        self.hp, self.wp = h + pt + pb, w + pl + pr
        self.inside = [[pt <= r < pt + h and pl <= c < pl + w for c in range(self.wp)] for r in range(self.hp)]
        self.o_valid, self.r, self.c = False, 0, 0

    def out_valid(self):
        return self.o_valid

    def in_ready(self, out_ready):
        return (not self.o_valid or out_ready) and self.inside[self.r][self.c]

    def step(self, in_valid, out_ready):
        en = not self.o_valid or out_ready
        inside = self.inside[self.r][self.c]
        accept = en and inside and in_valid
        advance = en and (not inside or in_valid)
        if en:
            self.o_valid = advance
        if advance:
            self.c += 1
            if self.c == self.wp:
                self.c, self.r = 0, (self.r + 1) % self.hp
        return accept


class CollectModel:
    """A :class:`~nnhdl.layers.Collect`: one output after ``pixels`` inputs, held until taken."""

    def __init__(self, pixels):
        self.n, self.count, self.o_valid = pixels, 0, False

    def out_valid(self):
        return self.o_valid

    def in_ready(self, out_ready):
        return not self.o_valid or out_ready

    def step(self, in_valid, out_ready):
        accept = in_valid and self.in_ready(out_ready)
        if out_ready:
            self.o_valid = False
        if accept:
            if self.count == self.n - 1:
                self.o_valid = True
            self.count = (self.count + 1) % self.n
        return accept


def stream_timing(network, inferences=4, credits=None):
    """The :class:`StreamTiming` of ``network`` (see the module docstring); ``credits``: at most
    that many inferences inside at once (the output queue of ``credit`` flow control, which
    passes results straight through to the always-ready sink)."""
    models = [layer.handshake() for _, layer in network.layers]
    chain = Series(*models)
    gate, wait = network.input_gate, 0  # the network input's minimum spacing
    beats_in, beats_out = network.in_beats, network.out_beats
    # idle = after one inference and enough empty cycles for every layer to finish its image
    # (a padding stage emits the next image's top rows before its first pixel arrives)
    settle = 4 * (beats_in + sum(layer.latency for _, layer in network.layers)
                  + sum(m.hp * m.wp for m in models if isinstance(m, PadModel))) + 16
    feed = [1, inferences]
    fed, outs, first_in, cycle, quiet = 0, [], [], 0, None
    total_in = beats_in * sum(feed)
    total_out = beats_out * sum(feed)
    limit = 10 * (total_in + settle) * (len(models) + 1) + 1000
    while len(outs) < total_out:
        if cycle > limit:  # pragma: no cover - a modelling error, not a user error
            raise RuntimeError("timing model made no progress")
        if quiet is None and len(outs) == beats_out * feed[0]:
            quiet = cycle + settle  # the warm-up inference is out: wait, then feed the measured ones
        offer = fed < beats_in * feed[0] or (quiet is not None and cycle >= quiet and fed < total_in)
        room = credits is None or len(first_in) - len(outs) // beats_out < credits  # (before this cycle's output)
        if chain.out_valid():  # the sink is always ready
            outs.append(cycle)
        accepted = chain.step(offer and wait == 0 and room, True)
        wait = gate - 1 if accepted else max(wait - 1, 0)
        if accepted:
            if fed % beats_in == 0:
                first_in.append(cycle)
            fed += 1
        cycle += 1
    last = [outs[(k + 1) * beats_out - 1] for k in range(sum(feed))]
    return StreamTiming(latency=last[1] - first_in[1], interval=last[-1] - last[-2], first_output=outs[0])
