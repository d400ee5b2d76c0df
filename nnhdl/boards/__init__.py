"""Boards: targets, harnesses, open-toolchain builds and reports, the host side of the UART harness."""
