"""moto's server, answering one request at a time:
`python -m ddb_bridge.services.moto_server_atomic -H HOST -p PORT` (what `moto_server()` in
moto_server.py runs, for the tests and the demo).

moto's own server answers each request on a thread of its own, and its DynamoDB evaluates a
conditional write without a lock. Two writers racing for one lease could both see its
condition hold: two back-fill processes claimed one export part 4 ms apart in a CI run, and
one then failed on a lease it had never really held. DynamoDB makes each conditional write
atomic; answering one request at a time gives moto the same guarantee. Connections are still
served on threads of their own (boto3 keeps its connections open), so one client's idle
connection does not hold up another's request.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def one_at_a_time(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    """A WSGI app that runs `app` for one request at a time, its whole body included."""
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            return list(app(environ, start_response))

    return serve


def _stop(_signum: int, _frame: FrameType | None) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    # moto builds some of its URLs (S3, the export's manifest) from the port it serves on.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, _stop)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        one_at_a_time(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
