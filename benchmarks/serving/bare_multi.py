"""Run ``bare_app`` on N uvicorn processes sharing a port (SO_REUSEPORT): ``bare_multi.py PORT N``.

The socket is created with IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets, and
without it every response waits ~40 ms for the client's delayed ACK.
"""

from __future__ import annotations

import multiprocessing
import socket
import sys

import uvicorn


def serve(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    config = uvicorn.Config("bare_app:app", access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    processes = [multiprocessing.Process(target=serve, args=(port,)) for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
