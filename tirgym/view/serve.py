"""Serve the page on 127.0.0.1 until interrupted (one static page: no routes, no state)."""

from __future__ import annotations

import contextlib
import threading
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_server(html: str, port: int = 0) -> ThreadingHTTPServer:
    """A loopback HTTP server answering GET / with the page (port 0: a free one)."""
    body = html.encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?", 1)[0] not in ("/", "/index.html"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # quiet
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def serve(
    html: str, port: int = 0, open_browser: bool = True, say: Callable[[str], None] = print
) -> None:
    """Serve until Ctrl-C; opens the default browser on the page unless told not to."""
    server = make_server(html, port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    say(f"serving {url}  (Ctrl-C to stop)")
    if open_browser:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
