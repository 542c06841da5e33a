"""portstorm against a real server that is not ours: nginx, in a test namespace.

nginx's stub_status counts accepted connections; portstorm's successes must match it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.netns import check, load, run_in_netns
from tests.support.nginx import require_nginx

pytestmark = pytest.mark.netns

NGINX_CONF = """
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
    server {{ listen 127.0.0.1:8080; location / {{ return 204; }} }}
    server {{ listen 127.0.0.1:8081; location /status {{ stub_status; }} }}
}}
"""


@pytest.mark.parametrize("close", ["client", "rst"])
def test_successes_match_nginx_accepted_connections(tmp_path: Path, close: str) -> None:
    nginx = require_nginx()
    (tmp_path / "tmp").mkdir()
    (tmp_path / "nginx.conf").write_text(NGINX_CONF.format(d=tmp_path))
    script = f"""
{nginx} -p "{tmp_path}" -c "{tmp_path}/nginx.conf" -g 'daemon off;' &
pid=$!
# nginx's master reaps its worker on shutdown: wait for it, or the worker is orphaned
trap 'kill $pid 2>/dev/null && wait $pid || true' EXIT
for i in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1', 8081)).close()" 2>/dev/null && break; sleep 0.1; done
before=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8081/status').read().decode())")
$PORTSTORM run 127.0.0.1:8080 --duration 2 --rate 200 --close {close} --quiet --no-report --out "{tmp_path}/run" >/dev/null
sleep 0.5
after=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8081/status').read().decode())")
echo "BEFORE $before" | tr '\\n' ' '; echo
echo "AFTER $after" | tr '\\n' ' '; echo
"""
    proc = run_in_netns(script)
    check(proc)

    def accepts(tag: str) -> int:
        m = re.search(rf"^{tag} .*?server accepts handled requests\s+(\d+)", proc.stdout, re.M)
        assert m, proc.stdout
        return int(m.group(1))

    # the readiness probe, and each status request itself, are accepted connections too
    accepted_by_nginx = accepts("AFTER") - accepts("BEFORE") - 1
    t = load(tmp_path / "run" / "result.json")["totals"]
    # all 400 made, or a start a driver behind its schedule dropped at the time bound
    # counted as not_started (399 + 1 with stress-ng beside the suite); never a failure
    assert t["succeeded"] + t["not_started"] == 400 and t["succeeded"] >= 390, t
    assert t["failed"] == {}
    assert t["succeeded"] == accepted_by_nginx
