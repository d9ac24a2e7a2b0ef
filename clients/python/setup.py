"""Builds the alertstream package: setuptools, plus the gRPC stubs generated from the repository's proto/ into the
build (never into the source tree, never committed). Metadata lives in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# The one proto, at the repository root: clients/python/../../proto.
PROTO_ROOT = HERE.parent.parent / "proto"
PROTO = "alertstream/v1/alertstream.proto"


class BuildWithStubs(build_py):
    """build_py, then grpc_tools.protoc: alertstream/v1/alertstream_pb2{,_grpc}.py and .pyi into the build."""

    def run(self) -> None:
        super().run()
        import grpc_tools
        from grpc_tools import protoc

        if not (PROTO_ROOT / PROTO).is_file():
            raise SystemExit(f"alertstream: {PROTO_ROOT / PROTO} not found; build from the repository's clients/python")
        out = Path(self.build_lib)
        well_known = Path(grpc_tools.__file__).parent / "_proto"
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            PROTO,
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"alertstream: protoc failed on {PROTO}")


setup(cmdclass={"build_py": BuildWithStubs})
