"""Targets: boards from amaranth-boards, and bare FPGA families for synthesis-only sizing.

Device resources are the vendors' published figures (Lattice iCE40 UltraPlus and ECP5 family
data sheets): logic cells / LUT4s, flip-flops, DSP blocks (iCE40UP: SB_MAC16; ECP5: 18x18
multipliers, as nextpnr counts MULT18X18D) and block RAM (iCE40UP: 30 EBR of 4 kbit; ECP5: EBR
of 18 kbit).
"""

from dataclasses import dataclass, field

__all__ = ["Target", "TARGETS", "get_target", "TargetError"]


class TargetError(ValueError):
    """An unknown board or family."""


@dataclass(frozen=True)
class Target:
    name: str
    family: str            # "ice40" or "ecp5"
    device: str            # nextpnr device / part
    package: str
    description: str
    resources: dict        # LUT, FF, DSP, BRAM (blocks), BRAM_bits
    platform: str = ""     # "module:Class" of an amaranth-boards platform; "" for a bare family
    uart: bool = False     # has a USB-serial UART wired for the UART harness
    clock_hz: float = 0.0  # the board's oscillator (default clock)
    notes: tuple = field(default_factory=tuple)

    @property
    def is_board(self):
        return bool(self.platform)

    def make_platform(self):
        import importlib
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(f"amaranth_boards.{module}"), cls)()


_UP5K = {"LUT": 5280, "FF": 5280, "DSP": 8, "BRAM": 30, "BRAM_bits": 30 * 4096}
_ECP5 = {
    "12k": {"LUT": 12288, "FF": 12288, "DSP": 28, "BRAM": 32, "BRAM_bits": 32 * 18432},
    "25k": {"LUT": 24288, "FF": 24288, "DSP": 28, "BRAM": 56, "BRAM_bits": 56 * 18432},
    "45k": {"LUT": 43848, "FF": 43848, "DSP": 72, "BRAM": 108, "BRAM_bits": 108 * 18432},
    "85k": {"LUT": 83640, "FF": 83640, "DSP": 156, "BRAM": 208, "BRAM_bits": 208 * 18432},
}

TARGETS = {t.name: t for t in [
    Target("icebreaker", "ice40", "iCE40UP5K", "SG48", "1BitSquared iCEBreaker (iCE40UP5K)", _UP5K,
           "icebreaker:ICEBreakerPlatform", uart=True, clock_hz=12e6),
    Target("ulx3s-12f", "ecp5", "LFE5U-12F", "CABGA381", "Radiona ULX3S, ECP5 12F", _ECP5["12k"],
           "ulx3s:ULX3S_12F_Platform", uart=True, clock_hz=25e6),
    Target("ulx3s-25f", "ecp5", "LFE5U-25F", "CABGA381", "Radiona ULX3S, ECP5 25F", _ECP5["25k"],
           "ulx3s:ULX3S_25F_Platform", uart=True, clock_hz=25e6),
    Target("ulx3s-45f", "ecp5", "LFE5U-45F", "CABGA381", "Radiona ULX3S, ECP5 45F", _ECP5["45k"],
           "ulx3s:ULX3S_45F_Platform", uart=True, clock_hz=25e6),
    Target("ulx3s-85f", "ecp5", "LFE5U-85F", "CABGA381", "Radiona ULX3S, ECP5 85F", _ECP5["85k"],
           "ulx3s:ULX3S_85F_Platform", uart=True, clock_hz=25e6),
    Target("orangecrab-25f", "ecp5", "LFE5U-25F", "CSFBGA285", "Good Stuff Dept. OrangeCrab r0.2, ECP5 25F",
           _ECP5["25k"], "orangecrab_r0_2:OrangeCrabR0_2_25FPlatform", uart=False, clock_hz=48e6,
           notes=("no USB-serial UART on the board: timing harness only",)),
    Target("orangecrab-85f", "ecp5", "LFE5U-85F", "CSFBGA285", "Good Stuff Dept. OrangeCrab r0.2, ECP5 85F",
           _ECP5["85k"], "orangecrab_r0_2:OrangeCrabR0_2_85FPlatform", uart=False, clock_hz=48e6,
           notes=("no USB-serial UART on the board: timing harness only",)),
    Target("ice40-up5k", "ice40", "iCE40UP5K", "SG48", "bare iCE40 UltraPlus 5K (synthesis and sizing)", _UP5K),
    Target("ecp5-25k", "ecp5", "LFE5U-25F", "CABGA381", "bare ECP5 25K (synthesis and sizing)", _ECP5["25k"]),
    Target("ecp5-85k", "ecp5", "LFE5U-85F", "CABGA381", "bare ECP5 85K (synthesis and sizing)", _ECP5["85k"]),
]}


def get_target(name):
    try:
        return TARGETS[name.lower()]
    except KeyError:
        raise TargetError(f"unknown board or family {name!r}; choose one of: {', '.join(TARGETS)} "
                          "(see 'nnhdl boards')") from None
