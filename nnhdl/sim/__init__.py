"""Simulation: the Amaranth-simulator runner (and, later, cocotb parts)."""
