"""gevent's pywsgi server with a WSGI application, and greenlets fetching from it with urllib
(cooperative after monkey-patching), in the style of gevent's wsgi examples."""

from gevent import monkey

monkey.patch_all()

import urllib.request  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402


def hello_app(environ, start_response):
    gevent.sleep(0.02)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {environ['PATH_INFO'].strip('/')}".encode()]


def fetch(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}") as response:
        print(response.read().decode())


server = WSGIServer(("127.0.0.1", 0), hello_app, log=None)
server.start()
gevent.joinall([gevent.spawn(fetch, server.server_port, name) for name in ("alice", "bob")])
server.stop()
