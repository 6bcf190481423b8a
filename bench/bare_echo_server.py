"""A bare grpcio echo server: the baseline the pool's call latency is compared with.

No protobuf, no codec, no tool dispatch: bytes in, the same bytes out, over the same transport
(a unix socket) and the same thread-pool server the worker uses.

Usage: python bench/bare_echo_server.py unix:/path/to.sock [max_message_bytes]
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from concurrent import futures

import grpc


def _echo(request: bytes, _context: grpc.ServicerContext) -> bytes:
    return request


def _die_with_parent() -> None:
    """A benchmark that crashes must not leave this server behind (Linux: PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # The parent died before the signal was armed.
        os._exit(1)


def main() -> None:
    _die_with_parent()
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 4 * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=36), options=options)
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(sys.argv[1])
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
