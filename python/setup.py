"""Builds the fast lane's optional C loop (`snakepit_bridge._lane_native`).

Everything else is declared in pyproject.toml. The extension is optional: without a C compiler
the package installs without it and the lane runs its pure-Python path (lane_native.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "snakepit_bridge._lane_native",
            ["src/snakepit_bridge/_lane_native.c"],
            extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror"],
            optional=True,
        )
    ]
)
