"""A module whose import fails, as a module with a missing dependency would."""

raise RuntimeError("this module cannot be imported: libfoo.so missing")
