"""Example adapters, used by the tests and the demo: `numeric` (numpy) and `echo`."""
