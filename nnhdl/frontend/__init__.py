"""Frontends: read a trained network from a framework file into a float :class:`nnhdl.ir.Graph`.

:mod:`nnhdl.frontend.keras` reads Keras 3 models (``.keras`` / ``.h5``). Importing this
package does not import any framework; each frontend imports its framework only when called.
"""
