"""Simulation: the Amaranth-simulator runner (amaranth_sim), payload packing and transfer timing
(packing; numpy only), and the cocotb parts for the exported Verilog (cocotb_bench, imported only
inside a cocotb run; cocotb_runner, which imports cocotb only when it runs a simulation)."""
