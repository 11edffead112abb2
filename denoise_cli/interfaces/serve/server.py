"""Running the web app: a private temporary folder, a threaded local HTTP server, and a clean stop on Ctrl-C."""
from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from pathlib import Path

from werkzeug.serving import make_server

from .app import create_app

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def run_server(host: str, port: int, config: dict, commands: dict, defaults: dict) -> None:
    """Serve until Ctrl-C, then delete every upload and result. Says where it listens, and warns when that is
    reachable from other machines."""
    root = Path(tempfile.mkdtemp(prefix="denoise-serve-"))
    app = create_app(config, commands, defaults, root)
    server = make_server(host, port, app, threaded=True)
    shown = f"[{host}]" if ":" in host else host
    print(f"denoise serve: http://{shown}:{server.server_port}/ (Ctrl-C to stop)", file=sys.stderr, flush=True)
    if host not in LOOPBACK:
        print(f"denoise serve: listening on {host}: other machines can reach this page; there is no login",
              file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill`, a service manager: stop as cleanly as on Ctrl-C
    try:
        server.serve_forever()  # werkzeug's returns on Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.extensions["denoise_queue"].stop()
        shutil.rmtree(root, ignore_errors=True)
    print("denoise serve: stopped; uploads and results deleted", file=sys.stderr, flush=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
