"""Op kinds: one module per kind of op, each saying everything nnhdl needs to know about it
(see :mod:`nnhdl.ops.registry`)."""

from .registry import OpKind, kind_of, load_all, op_type, register, registered_kinds

__all__ = ["OpKind", "kind_of", "load_all", "op_type", "register", "registered_kinds"]
