#!/usr/bin/env python3
"""Requests through upgrades: load on an app while it is upgraded, rolled back,
reconfigured and upgraded to a release whose health check fails (issue 14).

    bench/zero_downtime.py [--app hello|shopsite] [--rounds 10] [--listen port|socket]
                           [--check http|command] [--json FILE]

Builds the app (the example, fixtures/hello, or the Django project fixtures/apps/shopsite)
at 1.0.0, 1.1.0 and 1.2.0 (whose health check asks for a page the app lacks) with
target/debug's pyapp-build, then runs itself inside ../shared/tools/systemd-sandbox:
installs 1.0.0 and, for each round, takes 3 s of load at rest, upgrades to 1.1.0, rolls back, changes a configuration
value, and installs 1.2.0 (refused), while client threads send requests to 127.0.0.1
(`listen: port`) or through nginx to the app's socket (`listen: socket`). Prints per phase:
requests sent, failed (connection errors and non-2xx), p50/p99 latency, and the releases
that answered (each app names its version in a header: `X-Hello-Release`,
`X-Shopsite-Release`). Exit 1 when a request failed or the release with the failing health
check answered one. `--check command` (hello only) gives every release a health check
command instead (`hello-check`, which GETs /health, or /missing for 1.2.0, at the address
pyapp-install gives it in PYAPP_CHECK_WEB).
"""

import argparse
import http.client
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SANDBOX = ROOT.parent / "shared" / "tools" / "systemd-sandbox"
BAD = "1.2.0"
CLIENTS = 4
# Seconds of load at rest at the start of every round (so that the rest sample shares the
# machine's load of the whole run), and the longest a phase's command may take.
REST_SECONDS = 3
COMMAND_TIMEOUT = 300


def letter(round_):
    return chr(ord("A") + round_ % 26)


# What the script needs to know of each app: its project, the wheels it builds from (under
# --wheels), its health check, the page the clients ask for, the header naming the release
# that answered, and a configuration change for each round.
APPS = {
    "hello": {
        "fixture": "hello",
        "wheels": ["hello", "backends"],
        "health": "http: /health",
        "page": "/",
        "header": "X-Hello-Release",
        "config": lambda round_: f"greeting=Round {letter(round_)}",
    },
    "shopsite": {
        "fixture": "apps/shopsite",
        "wheels": ["apps/shopsite", "backends"],
        "health": "http: /admin/login/",
        "page": "/shop/admin/login/",
        "header": "X-Shopsite-Release",
        "config": lambda round_: f"workers={3 + round_ % 2}",
    },
}


def build(args, work, version, flaw):
    app = APPS[args.app]
    project = work / f"{args.app}-{version}"
    shutil.copytree(ROOT / "fixtures" / app["fixture"], project)
    edit(project / "pyproject.toml", 'version = "1.0.0"', f'version = "{version}"')
    if args.check == "command":
        check = "[hello-check, /missing]" if flaw else "[hello-check]"
        edit(project / "metadata.yaml", f"service: web\n    {app['health']}", f"command: {check}")
    elif flaw:
        edit(project / "metadata.yaml", app["health"], "http: /missing")
    if args.listen == "socket":
        edit(project / "metadata.yaml", "listen: port", "listen: socket")
    out = work / "bundles" / version
    out.mkdir(parents=True)
    wheels = [arg for name in app["wheels"] for arg in ["--wheels", str(pathlib.Path(args.wheels) / name)]]
    subprocess.run(
        [str(pathlib.Path(args.bin_dir) / "pyapp-build"), str(project), "-o", str(out),
         *wheels, "--no-index"],
        check=True, stdout=subprocess.DEVNULL,
    )
    return next(out.glob("*.pyapp"))


def edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    if old not in text:
        sys.exit(f"{path}: {old!r} not found")
    path.write_text(text.replace(old, new), encoding="utf-8")


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


class Load:
    """Client threads sending `GET PAGE` one after another, each on a new connection."""

    def __init__(self, connect, app):
        self.connect = connect
        self.app = app
        self.phase = "rest"
        self.results = {}
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(CLIENTS)]

    def client(self):
        while self.running:
            phase = self.phase
            started = time.monotonic()
            release, ok = None, False
            try:
                connection = self.connect()
                connection.request("GET", self.app["page"])
                response = connection.getresponse()
                response.read()
                release = response.getheader(self.app["header"])
                ok = 200 <= response.status < 300
                connection.close()
            except OSError:
                ok = False
            elapsed = time.monotonic() - started
            with self.lock:
                self.results.setdefault(phase, []).append((ok, elapsed, release))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_):
        self.running = False
        for thread in self.threads:
            thread.join()


def wait_serving(connect, app):
    """Until the app answers (a web server reloads its configuration in the background)."""
    for _ in range(300):
        try:
            connection = connect()
            connection.request("GET", app["page"])
            response = connection.getresponse()
            response.read()
            if response.status == 200 and response.getheader(app["header"]):
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("the app never answered after its install")


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(fraction * len(values)))]


def inside(args):
    installer, bundles = args.installer, dict(zip(["1.0.0", "1.1.0", BAD], args.bundles))
    app = APPS[args.app]

    refusals = []

    def run(*command, expect=0):
        done = subprocess.run([installer, *command], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT)
        if done.returncode != expect:
            sys.exit(f"pyapp-install {' '.join(command)}: exit {done.returncode}\n{done.stderr}")
        if expect:
            refusals.append(done.stderr)

    python = ["--python", "/usr/bin/python3"]
    if args.listen == "socket":
        # nginx proxies to the app's socket at "/" of its default server.
        pathlib.Path("/etc/nginx/sites-enabled/default").unlink(missing_ok=True)
        subprocess.run(["systemctl", "start", "nginx"], check=True)
        run(*python, "--web", "nginx", bundles["1.0.0"])
        connect = lambda: http.client.HTTPConnection("127.0.0.1", 80, timeout=30)  # noqa: E731
    else:
        run(*python, bundles["1.0.0"])
        unit = pathlib.Path(f"/etc/systemd/system/{args.app}-web.socket").read_text()
        address = next(line.split("=", 1)[1] for line in unit.splitlines()
                       if line.startswith("ListenStream="))
        host, port = address.rsplit(":", 1)
        connect = lambda: http.client.HTTPConnection(host, int(port), timeout=30)  # noqa: E731
    wait_serving(connect, app)
    with Load(connect, app) as load:
        for round_ in range(args.rounds):
            load.phase = "rest"
            time.sleep(REST_SECONDS)
            for phase, command, expect in [
                ("upgrade", [*python, bundles["1.1.0"]], 0),
                ("rollback", ["rollback", args.app], 0),
                ("config", ["config", args.app, "--set", app["config"](round_)], 0),
                ("failing-upgrade", [*python, bundles[BAD]], 1),
            ]:
                load.phase = phase
                run(*command, expect=expect)
            load.phase = "between"
            time.sleep(0.2)
    report = {}
    for phase, results in load.results.items():
        latencies = [elapsed for _, elapsed, _ in results]
        releases = {}
        for _, _, release in results:
            releases[release or "-"] = releases.get(release or "-", 0) + 1
        report[phase] = {
            "sent": len(results),
            "failed": sum(1 for ok, _, _ in results if not ok),
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "releases": releases,
        }
    # What the refused upgrade said, the first time: why its health check failed.
    report["refused"] = refusals[0]
    pathlib.Path(args.json).write_text(json.dumps(report, indent=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=sorted(APPS), default="hello")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--listen", choices=["port", "socket"], default="port")
    parser.add_argument("--check", choices=["http", "command"], default="http",
                        help="the releases' health check (default: http)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--sandbox", default=str(SANDBOX), help="systemd-sandbox")
    parser.add_argument("--bin-dir", default=str(ROOT / "target/debug"),
                        help="where pyapp-build and pyapp-install are")
    parser.add_argument("--wheels", default=str(ROOT / "target/wheels"),
                        help="the wheels tests/fetch-wheels.sh fetched (hello/, backends/, apps/)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--installer", help=argparse.SUPPRESS)
    parser.add_argument("bundles", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.check == "command" and args.app != "hello":
        parser.error("--check command: only hello has a health check command (hello-check)")
    if args.inside:
        return inside(args)
    work = pathlib.Path(tempfile.mkdtemp(dir=ROOT / "target", prefix="zero-downtime."))
    try:
        bundles = [build(args, work, version, version == BAD)
                   for version in ["1.0.0", "1.1.0", BAD]]
        results = work / "results.json"
        subprocess.run(
            [args.sandbox, "--", sys.executable, __file__, "--inside", "--rounds", str(args.rounds),
             "--app", args.app, "--listen", args.listen, "--json", str(results),
             "--installer", str(pathlib.Path(args.bin_dir) / "pyapp-install"),
             *map(str, bundles)],
            check=True, env={**os.environ, "SANDBOX_BIND": str(work)},
        )
        report = json.loads(results.read_text())
        refused = report.pop("refused")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({**report, "refused": refused}, indent=2))
    print(f"{'phase':<16} {'sent':>6} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8}  releases")
    for phase, row in report.items():
        releases = ", ".join(f"{name}: {count}" for name, count in sorted(row["releases"].items()))
        print(f"{phase:<16} {row['sent']:>6} {row['failed']:>6} {row['p50_ms']:>8} "
              f"{row['p99_ms']:>8}  {releases}")
    failed = sum(row["failed"] for row in report.values())
    bad = sum(row["releases"].get(BAD, 0) for row in report.values())
    rest = report["rest"]["p99_ms"]
    ratios = ", ".join(f"{phase} {report[phase]['p99_ms'] / rest:.2f}x"
                       for phase in ["upgrade", "rollback", "config", "failing-upgrade"]
                       if phase in report)
    print(f"failed requests: {failed}; answered by {BAD} (failing health check): {bad}; "
          f"p99/rest: {ratios}")
    return 1 if failed or bad else 0


if __name__ == "__main__":
    sys.exit(main())
