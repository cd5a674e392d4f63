#!/usr/bin/env python3
"""pyapp's benchmark: pyapp-install and pyapp-build against uv, pip, cp, shiv and pex.

In one run, on one pinned set of real wheels downloaded from PyPI, it times (several rounds,
medians):

  pyapp-install  fresh       the bundle into an empty apps dir (so an empty store)
                 second app  another app (other name, same wheels) beside an installed one
                 upgrade     a new version of the app (same wheels) over the installed one
                 reinstall   the same bundle again (must say "unchanged")
  uv             `uv venv` + `uv pip install --offline`, empty cache, then a warm one
  pip            `python -m venv --without-pip` + `pip install --no-index --find-links`
  cp             `cp -a` and `cp -al` of an installed release: the floor for writing it
  build          pyapp-build, shiv and pex from the same local wheels, and bundle sizes
                 (tools start with empty caches; pex with a warm one is shown too)

then each quiet scenario once more for its commands' peak RSS (GNU time), then prints a table of medians and the ratios against
the targets of BENCHMARKS.md, PASS or FAIL each. Every installer installs the same thing: the
app's wheel (taken from the pyapp bundle) and every pin, with the same interpreter.

The installs (pyapp-install's four, uv's two) also run under two conditions:
  writer     a bounded `dd` of --writer-mb MiB (no fsync) into the same filesystem, started
             before the timed command and killed after it, as a log or backup job would be
  neighbour  bench/neighbour.py, appending 4 KiB and fsyncing every 10 ms on the same
             filesystem: its p99 fsync latency while each installer runs is reported
With --baseline DIR, DIR/pyapp-install (another build, e.g. main's) runs the same install
scenarios in the same rounds, so before and after are measured side by side.

Method: rounds are round-robin (each round runs every scenario once, so load from elsewhere
spreads over all of them); a scenario's setup (an earlier install, an empty cache) is not
timed; `sync` runs before each timed command (before the first, under a condition, which
then starts); the page cache is not dropped: the warm-up round reads every wheel and tool
once, so every timed run finds them in memory. A timed run is wall-clock time from spawn
to exit, with nothing between this Python and the command (GNU time's own fork and exec
cost ~2.5 ms, as much as a reinstall: peak RSS is taken in a pass of its own). A ratio is taken within each round (A and B measured minutes apart, under the same
load), and a target holds only when it holds in every round; the median of the per-round
ratios is shown with their range.

Exit status: 0 measured (a missed target is a result, not an error), 1 bad arguments or pin
file, 2 something broke (a command failed, an install did not do what it should).

    python3 bench/bench.py                          the full set, 5 rounds, release build
    python3 bench/bench.py --set small --rounds 1 --warmup 0 --profile debug --writer-mb 256
                                                    CI's check
    python3 bench/bench.py --baseline DIR --only install,uv     the installs alone, before/after
"""

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
FIXTURE = REPO / "fixtures" / "hello"
TARGET = REPO / os.environ.get("CARGO_TARGET_DIR", "target")
GNU_TIME = "/usr/bin/time"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")

# The app every tool packs or installs: fixtures/hello depending on the whole set.
APP = "hello"
SECOND_APP = "hello-two"
VERSION = "1.0.0"
UPGRADE_VERSION = "1.1.0"


class Refused(Exception):
    """The user's fault: bad arguments or pin file (exit 1)."""


class Broken(Exception):
    """Something that should work did not (exit 2)."""


# ---------------------------------------------------------------- running commands


def clean_env(**extra):
    """The environment of every measured tool: no pip/uv/pex/shiv/Python settings of the
    caller's (a find-links, a cache, a config would change what is measured)."""
    prefixes = ("PIP_", "UV_", "PEX_", "SHIV_", "PYTHON", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", UV_NO_CONFIG="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(argv, env=None, cwd=None):
    """Run an untimed command (setup, downloads); its stdout, or Broken with its stderr."""
    argv = [str(a) for a in argv]
    try:
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    except OSError as err:
        raise Broken(f"cannot run {argv[0]}: {err}") from err
    if done.returncode != 0:
        raise Broken(f"`{' '.join(argv)}` exited {done.returncode}:\n{tail(done.stderr)}")
    return done.stdout


def tail(text, lines=15):
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Step:
    """One command of a timed run."""

    argv: list
    env: dict
    cwd: Path = None


@dataclass
class Sample:
    seconds: float
    peak_rss_kb: int | None
    stdout: str = ""


def timed(step, log_dir, rss=False):
    """Run one step: its wall-clock time, and with `rss` its peak RSS. GNU time reports the
    RSS: it forks the command from its own small image, where the rusage of a child forked
    from this Python would count this Python's RSS too (Linux carries the pre-exec
    high-water mark over). Its fork and exec are in the time then: a timed run goes
    without it."""
    argv = [str(a) for a in step.argv]
    out, err, rss_file = log_dir / "stdout", log_dir / "stderr", log_dir / "rss"
    wrapper = [GNU_TIME, "-f", "%M", "-o", str(rss_file)] if rss else []
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        start = time.perf_counter()
        try:
            status = subprocess.call(
                [*wrapper, *argv], stdin=subprocess.DEVNULL,
                stdout=stdout, stderr=stderr, env=step.env, cwd=step.cwd,
            )
        except OSError as error:
            raise Broken(f"cannot run `{(wrapper or argv)[0]}`: {error}") from error
        seconds = time.perf_counter() - start
    if status != 0:
        raise Broken(f"`{' '.join(argv)}` exited {status}:\n{tail(err.read_text(errors='replace'))}")
    peak = int(rss_file.read_text().split()[-1]) if rss else None
    return Sample(seconds, peak, out.read_text(errors="replace"))


# ---------------------------------------------------------------- inputs


def read_pins(path):
    """`name==version` lines (comments and blank lines skipped)."""
    pins = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        if not match:
            raise Refused(f"{path}:{number}: `{line}` is not a `name==version` pin")
        pins.append((match.group(1), match.group(2)))
    if not pins:
        raise Refused(f"{path}: no pins")
    return pins


def digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def default_python():
    """The system's interpreter, which every user can run, when there is one."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else sys.executable


def describe_python(python):
    """The interpreter's real path and X.Y.Z version."""
    try:
        out = run([python, "-c", "import sys; print(sys.executable); print(sys.version.split()[0])"])
    except Broken as err:
        raise Refused(f"--python {python}: not a working interpreter ({err})") from err
    executable, version = out.split()
    return Path(executable).resolve(), version


def tools_venv(cache, python, python_version):
    """A venv of the chosen interpreter with bench/tools.txt installed (pip from PyPI), made
    once per tool list and interpreter."""
    spec = BENCH / "tools.txt"
    venv = cache / f"tools-{digest(spec.read_bytes(), python, python_version)}"
    stamp = venv / ".complete"
    if not stamp.exists():
        shutil.rmtree(venv, ignore_errors=True)
        log(f"installing {', '.join(p for p, _ in read_pins(spec))} into {venv}")
        try:
            run([python, "-m", "venv", venv])
        except Broken as err:
            raise Broken(f"{err}\nhint: on Debian, `apt-get install python3-venv`") from err
        run([venv / "bin/python", "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", "-r", spec])
        stamp.touch()
    return venv


def download(cache, tools, set_name, requirements, python_version):
    """The pinned wheels, downloaded once (a stamp keyed by the pin file and Python version)
    with the tools venv's pip, so they fit the interpreter."""
    wheels = cache / "wheels" / f"{set_name}-{digest(requirements.read_bytes(), python_version)}"
    stamp = wheels / ".complete"
    if not stamp.exists():
        shutil.rmtree(wheels, ignore_errors=True)
        log(f"downloading {requirements.name} into {wheels}")
        run([tools / "bin/python", "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--only-binary=:all:", "--no-deps", "-d", wheels, "-r", requirements])
        stamp.touch()
    return wheels


def empty_scratch(scratch):
    """Make `scratch` an empty directory marked as the benchmark's; refuse to empty a
    directory with files that an earlier run did not leave."""
    marker = scratch / ".pyapp-bench"
    if scratch.exists() and any(scratch.iterdir()) and not marker.exists():
        raise Refused(f"--work-dir {scratch}: not empty and not a benchmark's scratch space")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    marker.touch()


def cargo_build(profile):
    """Build both binaries (a no-op when they are up to date); their directory."""
    log(f"cargo build ({profile})")
    argv = ["cargo", "build", "--quiet", "--workspace", "--bins"]
    if profile == "release":
        argv.append("--release")
    run(argv, cwd=REPO)
    return TARGET / profile


def make_project(dest, pins, name=None, version=VERSION):
    """fixtures/hello, depending on every pin of the set, at `version`, named `name`."""
    shutil.copytree(FIXTURE, dest)
    (dest / "pinned-requirements.txt").write_text(
        "# The benchmark set (bench.py wrote this).\n"
        + "".join(f"{n}=={v}\n" for n, v in pins)
    )
    pyproject = dest / "pyproject.toml"
    text = pyproject.read_text()
    dependencies = "dependencies = [\n" + "".join(f'    "{n}",\n' for n, _ in pins) + "]"
    text, deps_found = re.subn(r"(?ms)^dependencies = \[.*?^\]", dependencies, text)
    text, version_found = re.subn(r'(?m)^version = ".*"$', f'version = "{version}"', text)
    if deps_found != 1 or version_found != 1:
        raise Broken(f"{FIXTURE}/pyproject.toml: no `version = ` or `dependencies = [` line to replace")
    pyproject.write_text(text)
    if name:
        metadata = dest / "metadata.yaml"
        text, found = re.subn(r"(?m)^format: 1$", f"format: 1\nname: {name}", metadata.read_text())
        if found != 1:
            raise Broken(f"{FIXTURE}/metadata.yaml: no `format: 1` line")
        metadata.write_text(text)
    return dest


def app_wheel(bundle, dest_dir):
    """Copy the app's own wheel out of a bundle (metadata.yaml's `app-wheel`) into dest_dir."""
    with zipfile.ZipFile(bundle) as zf:
        metadata = zf.read("metadata.yaml").decode()
        match = re.search(r"(?m)^app-wheel: (\S+)$", metadata)
        if not match:
            raise Broken(f"{bundle}: metadata.yaml has no app-wheel")
        name = match.group(1).strip("\"'")
        (dest_dir / name).write_bytes(zf.read(f"deps/{name}"))
    return name


def tree_stats(path):
    """Files (symbolic links included) and bytes of regular files under path."""
    files = size = 0
    for dirpath, _, filenames in os.walk(path):
        for filename in filenames:
            st = os.lstat(os.path.join(dirpath, filename))
            files += 1
            size += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return files, size


# ---------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    key: str
    label: str
    # prepare(run_dir) does the untimed setup and returns the steps to time.
    prepare: object
    # check(run_dir, sample of the last step) raises Broken when the run did not do its job;
    # returns a size in bytes where the scenario makes an artifact.
    check: object = None
    # None (quiet), "writer" or "neighbour" (see the module's doc).
    condition: str = None
    samples: list = field(default_factory=list)
    sizes: list = field(default_factory=list)
    # Under "neighbour": the neighbour's fsync latencies (seconds) of each timed round.
    neighbour: list = field(default_factory=list)
    # The largest peak RSS (KiB) of its commands, from the pass after the rounds (quiet
    # scenarios only).
    peak_rss_kb: int = None


class Bench:
    """Everything the scenarios share: binaries, tools, wheels, bundles, interpreter."""

    def __init__(self, scratch, binaries, tools, wheels, backends, pins, python, baseline, only):
        self.scratch, self.bin, self.tools, self.wheels, self.python = (
            scratch, binaries, tools, wheels, python)
        # Another build's directory, whose pyapp-install runs the install scenarios too.
        self.baseline = baseline
        # Key prefixes of the scenarios to run (all when empty).
        self.only = only
        # The build backends' wheels: pyapp-build builds the app's wheel with its backend.
        self.backends = backends
        self.projects = scratch / "projects"
        self.bundles = scratch / "bundles"
        self.projects.mkdir(parents=True)
        self.bundles.mkdir()
        first = make_project(self.projects / APP, pins)
        self.project = first
        second = make_project(self.projects / SECOND_APP, pins, name=SECOND_APP)
        upgrade = make_project(self.projects / f"{APP}-{UPGRADE_VERSION}", pins, version=UPGRADE_VERSION)
        log("building the bundles (untimed)")
        self.bundle = self.build_bundle(first, self.bundles / "first")
        self.second_bundle = self.build_bundle(second, self.bundles / "second")
        self.upgrade_bundle = self.build_bundle(upgrade, self.bundles / "upgrade")
        # The wheelhouse uv, pip, shiv and pex install from: the set plus the app's wheel.
        self.wheelhouse = scratch / "wheelhouse"
        self.wheelhouse.mkdir()
        for wheel in wheels.glob("*.whl"):
            os.link(wheel, self.wheelhouse / wheel.name)
        app_wheel(self.bundle, self.wheelhouse)
        self.requirements = scratch / "requirements.txt"
        self.requirements.write_text(f"{APP}=={VERSION}\n" + "".join(f"{n}=={v}\n" for n, v in pins))
        # A release installed once: the tree cp copies, and the numbers of the table's head.
        reference_root = scratch / "reference"
        self.install(reference_root, self.bundle, "installed")
        self.release = (reference_root / "applications" / APP / "current").resolve()
        self.uv_warm_cache = scratch / "uv-warm-cache"
        if self.wanted("uv-warm"):
            log("priming uv's warm cache (untimed)")
            for step in self.uv_steps(scratch / "uv-prime", self.uv_warm_cache):
                run(step.argv, env=step.env)
        self.pex_warm_root = scratch / "pex-warm-root"
        if self.wanted("build-pex-warm"):
            log("priming pex's warm cache (untimed)")
            (scratch / "pex-prime").mkdir()
            step = self.pex_step(scratch / "pex-prime", self.pex_warm_root)
            run(step.argv, env=step.env, cwd=step.cwd)

    def wanted(self, key):
        """Whether the scenario `key` runs (--only)."""
        return not self.only or any(key.startswith(prefix) for prefix in self.only)

    def build_bundle(self, project, out_dir):
        out = run(self.build_argv(project, out_dir), env=clean_env())
        return Path(out.strip().splitlines()[-1])

    def build_argv(self, project, out_dir):
        return [self.bin / "pyapp-build", project, "-o", out_dir, "--wheels", self.wheels,
                "--wheels", self.backends,
                "--no-index", "--python", self.python, "--quiet"]

    def install_argv(self, root, bundle, binaries=None):
        return [(binaries or self.bin) / "pyapp-install", "--root", root, "--python", self.python,
                "--json", "--quiet", bundle]

    def install(self, root, bundle, expected, binaries=None):
        check_action(run(self.install_argv(root, bundle, binaries), env=clean_env()), expected)

    def uv_steps(self, run_dir, cache):
        uv, venv = self.tools / "bin/uv", run_dir / "venv"
        env = clean_env(UV_CACHE_DIR=cache, UV_PYTHON_DOWNLOADS="never")
        return [
            Step([uv, "venv", "--quiet", "--python", self.python, venv], env),
            Step([uv, "pip", "install", "--quiet", "--offline", "--no-index", "--find-links",
                  self.wheelhouse, "-r", self.requirements, "--python", venv / "bin/python"], env),
        ]

    def pex_step(self, run_dir, pex_root):
        return Step([self.tools / "bin/pex", "-c", APP, "-o", run_dir / "app.pex", "--no-pypi",
                     "--find-links", self.wheelhouse, "-r", self.requirements,
                     "--pex-root", pex_root], clean_env(), cwd=run_dir)

    def scenarios(self):
        """The scenarios --only selects, in the order each round runs them."""
        return [s for s in self.all_scenarios() if self.wanted(s.key)]

    def all_scenarios(self):
        def install_over(first_bundle, bundle, binaries=None):
            # The untimed first install is made by the same build as the timed one: each
            # build reads the apps dir its own way (a baseline may predate a state format).
            def prepare(d):
                if first_bundle:
                    self.install(d / "root", first_bundle, "installed", binaries)
                return [Step(self.install_argv(d / "root", bundle, binaries), clean_env())]
            return prepare

        def expect(action):
            return lambda d, sample: check_action(sample.stdout, action)

        def pip(d):
            venv = d / "venv"
            return [
                Step([self.python, "-m", "venv", "--without-pip", venv], clean_env()),
                Step([self.tools / "bin/python", "-m", "pip", "--python", venv / "bin/python",
                      "install", "--quiet", "--no-index", "--find-links", self.wheelhouse,
                      "-r", self.requirements], clean_env()),
            ]

        def artifact(name):
            def check(d, sample):
                path = d / name
                if not path.is_file():
                    raise Broken(f"{path} was not written")
                return path.stat().st_size
            return check

        def pyapp_bundle(d, sample):
            made = list((d / "out").glob("*.pyapp"))
            if len(made) != 1:
                raise Broken(f"pyapp-build wrote {len(made)} bundles in {d / 'out'}")
            return made[0].stat().st_size

        def installs(prefix, name, binaries, condition, which):
            """pyapp-install's scenarios `which` (of fresh, second-app, upgrade,
            reinstall) under `condition`, run by `binaries`."""
            cases = {
                "fresh": ("fresh (empty apps dir)", None, self.bundle, "installed"),
                "second-app": ("second app (same wheels)", self.bundle, self.second_bundle,
                               "installed"),
                "upgrade": ("upgrade (same wheels)", self.bundle, self.upgrade_bundle, "upgraded"),
                "reinstall": ("same bundle again", self.bundle, self.bundle, "unchanged"),
            }
            return [
                Scenario(f"{prefix}-{case}{suffix(condition)}",
                         f"{name}, {cases[case][0]}{label(condition)}",
                         install_over(cases[case][1], cases[case][2], binaries),
                         expect(cases[case][3]), condition)
                for case in which
            ]

        def uv(condition, which):
            cases = {
                "cold": ("empty cache", lambda d: self.uv_steps(d, d / "uv-cache")),
                "warm": ("warm cache", lambda d: self.uv_steps(d, self.uv_warm_cache)),
            }
            return [
                Scenario(f"uv-{case}{suffix(condition)}",
                         f"uv venv + pip install, {cases[case][0]}{label(condition)}",
                         cases[case][1], condition=condition)
                for case in which
            ]

        def with_baseline(condition, which, uv_which):
            mine = installs("install", "pyapp-install", None, condition, which)
            theirs = (installs("baseline-install", "baseline pyapp-install", self.baseline,
                               condition, which) if self.baseline else [])
            return mine + theirs + uv(condition, uv_which)

        everything = ["fresh", "second-app", "upgrade", "reinstall"]
        return [
            *with_baseline(None, everything, ["cold", "warm"]),
            *with_baseline("writer", everything, ["cold", "warm"]),
            *with_baseline("neighbour", ["fresh", "second-app"], ["cold", "warm"]),
            Scenario("pip", "venv + pip install (compiles .pyc)", pip),
            Scenario("cp-a", "cp -a of the installed release",
                     lambda d: [Step(["cp", "-a", self.release, d / "copy"], clean_env())]),
            Scenario("cp-al", "cp -al of the installed release",
                     lambda d: [Step(["cp", "-al", self.release, d / "copy"], clean_env())]),
            Scenario("build-pyapp", "pyapp-build",
                     lambda d: [Step(self.build_argv(self.project, d / "out"), clean_env())],
                     pyapp_bundle),
            Scenario("build-shiv", "shiv",
                     lambda d: [Step([self.tools / "bin/shiv", "-c", APP, "-o", d / "app.pyz",
                                      "--no-index", "--find-links", self.wheelhouse,
                                      "-r", self.requirements], clean_env(), cwd=d)],
                     artifact("app.pyz")),
            Scenario("build-pex", "pex, empty cache",
                     lambda d: [self.pex_step(d, d / "pex-root")], artifact("app.pex")),
            Scenario("build-pex-warm", "pex, warm cache (not a target)",
                     lambda d: [self.pex_step(d, self.pex_warm_root)], artifact("app.pex")),
        ]


def suffix(condition):
    return f"@{condition}" if condition else ""


def label(condition):
    return {None: "", "writer": ", with a writer", "neighbour": ", with a neighbour"}[condition]


def check_action(stdout, expected):
    try:
        action = json.loads(stdout)["action"]
    except (ValueError, KeyError, TypeError) as err:
        raise Broken(f"pyapp-install --json printed no action: {stdout[:300]!r}") from err
    if action != expected:
        raise Broken(f"pyapp-install said {action!r}, expected {expected!r}")


class Condition:
    """What runs beside a scenario's timed commands: nothing, a writer or a neighbour
    (the module's doc), on the filesystem of `place` (a directory of the scratch space)."""

    def __init__(self, kind, place, writer_mb):
        self.kind, self.place, self.writer_mb = kind, place, writer_mb
        self.process = None
        self.latencies = None

    def start(self):
        if self.kind == "writer":
            path = self.place / "writer.bin"
            self.process = subprocess.Popen(
                ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={self.writer_mb}",
                 "status=none"], stdin=subprocess.DEVNULL)
            # Under way before the command starts: the first 256 MiB (or all) are written.
            deadline = time.monotonic() + 10
            wanted = min(self.writer_mb, 256) << 20
            while time.monotonic() < deadline and self.process.poll() is None:
                if path.exists() and path.stat().st_size >= wanted:
                    break
                time.sleep(0.005)
        elif self.kind == "neighbour":
            self.process = subprocess.Popen(
                [sys.executable, BENCH / "neighbour.py", self.place / "neighbour.log"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if self.process.stderr.readline().strip() != "ready":
                raise Broken(f"bench/neighbour.py did not start: {self.process.stderr.read()}")

    def stop(self):
        if self.kind == "writer":
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            (self.place / "writer.bin").unlink(missing_ok=True)
        elif self.kind == "neighbour":
            self.process.send_signal(signal.SIGTERM)
            out, err = self.process.communicate()
            if self.process.returncode != 0:
                raise Broken(f"bench/neighbour.py exited {self.process.returncode}:\n{tail(err)}")
            self.latencies = json.loads(out)


def p99(latencies):
    """The 99th percentile (nearest rank) of a list of seconds; 0 for an empty list."""
    ordered = sorted(latencies)
    return ordered[max(0, -(-len(ordered) * 99 // 100) - 1)] if ordered else 0.0


def round_order(scenarios, number):
    """The scenarios in the order round `number` runs them: with a baseline, every even
    round runs the baseline's install scenarios where this build's run in the others, and
    this build's in their place. The first scenarios after a round's deletion create files
    more slowly (the no-journal ext4 inode allocator: see BENCHMARKS.md), which would
    otherwise always fall on this build."""
    order = list(scenarios)
    if number % 2:
        return order
    where = {s.key: at for at, s in enumerate(order)}
    for s in scenarios:
        other = where.get("baseline-" + s.key)
        if s.key.startswith("install-") and other is not None:
            mine = where[s.key]
            order[mine], order[other] = order[other], order[mine]
    return order


def measure(bench, scenarios, rounds, warmup, writer_mb):
    """Warm-up rounds (of the quiet scenarios), then timed rounds, each running every
    scenario once in a new directory: setup untimed, `sync`, the scenario's condition
    started, the timed steps, the condition stopped, the scenario's check; then a pass of
    the quiet scenarios under GNU time for their peak RSS. The round's directories are
    deleted together at its end (empty_trash)."""
    runs, trash = bench.scratch / "runs", bench.scratch / "trash"
    trash.mkdir()
    memory = rounds + 1
    for number in range(1 - warmup, memory + 1):
        if number < 1:
            tag = f"warm-up {number + warmup}/{warmup}"
        else:
            tag = f"round {number}/{rounds}" if number < memory else "peak RSS"
        for scenario in round_order(scenarios, number):
            if (number < 1 or number == memory) and scenario.condition:
                continue  # the quiet scenarios read everything the others do
            run_dir = runs / scenario.key
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            steps = scenario.prepare(run_dir)
            seconds, peak, last = 0.0, 0, None
            condition = Condition(scenario.condition, run_dir, writer_mb)
            try:
                for index, step in enumerate(steps):
                    if index == 0 or scenario.condition is None:
                        os.sync()
                    if index == 0:
                        condition.start()
                    last = timed(step, run_dir, rss=number == memory)
                    seconds += last.seconds
                    peak = max(peak, last.peak_rss_kb or 0)
            finally:
                if condition.process:
                    condition.stop()
            size = scenario.check(run_dir, last) if scenario.check else None
            extra = (f", neighbour's fsync p99 {p99(condition.latencies) * 1000:.1f} ms"
                     if condition.latencies is not None else "")
            log(f"{tag}  {scenario.label}: {fmt_time(seconds)}{extra}")
            if number == memory:
                scenario.peak_rss_kb = peak
            elif number >= 1:
                scenario.samples.append(Sample(seconds, None))
                if size is not None:
                    scenario.sizes.append(size)
                if condition.latencies is not None:
                    scenario.neighbour.append(condition.latencies)
            run_dir.rename(trash / scenario.key)
        empty_trash(trash)


def empty_trash(trash):
    """Deletes the round's trees, then lets 6 s pass after a sync: ext4 without a journal
    (this machine's) skips inodes freed less than 5 s ago when it allocates one, and scans
    past each of them (300 s while their inode table block is dirty), so a tree of 10,000
    files deleted just before a timed command makes its file creation several times
    slower. Deleting each scenario's tree right after it ran made every time depend on
    what the scenario before it had left."""
    shutil.rmtree(trash, ignore_errors=True)
    trash.mkdir()
    os.sync()
    time.sleep(6)


# ---------------------------------------------------------------- results


def fmt_time(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_mb(size):
    return f"{size / 1e6:.1f} MB"


def fmt_rss(kb):
    """A peak RSS column: '-' for a scenario under a condition (measured quiet only)."""
    return f"{'-':>11}" if kb is None else f"{kb / 1024:>8.0f} MB"


def per_round(results, a, b, of="samples_s"):
    """a / b in each round, or None when either was not measured."""
    if a not in results or b not in results:
        return None
    return [x / y for x, y in zip(results[a][of], results[b][of])]


def targets(results, sizes):
    """The targets (BENCHMARKS.md): what, each round's value, the limit, how it is shown,
    whether it held in every round. Those whose scenarios did not run are left out."""
    ms = lambda key: [t * 1000 for t in results[key]["samples_s"]] if key in results else None
    rows = []
    for condition in (None, "writer"):
        at, said = suffix(condition), label(condition)
        rows += [
            (f"first install vs uv, empty cache{said}",
             per_round(results, f"install-fresh{at}", f"uv-cold{at}"), "<= 0.60x"),
            (f"second app vs uv, warm cache{said}",
             per_round(results, f"install-second-app{at}", f"uv-warm{at}"), "<= 0.50x"),
            (f"upgrade vs uv, warm cache{said}",
             per_round(results, f"install-upgrade{at}", f"uv-warm{at}"), "<= 0.50x"),
            (f"reinstall, same bundle{said}", ms(f"install-reinstall{at}"), "<= 5 ms"),
        ]
    rows += [
        ("neighbour's fsync p99, first install / uv cold",
         per_round(results, "install-fresh@neighbour", "uv-cold@neighbour", "neighbour_p99_s"),
         "<= 1.00x"),
        ("neighbour's fsync p99, second app / uv warm",
         per_round(results, "install-second-app@neighbour", "uv-warm@neighbour",
                   "neighbour_p99_s"), "<= 1.00x"),
        ("pyapp-build speed-up over shiv", per_round(results, "build-shiv", "build-pyapp"), ">= 20x"),
        ("pyapp-build speed-up over pex", per_round(results, "build-pex", "build-pyapp"), ">= 20x"),
    ]
    for other in ("shiv", "pex"):
        if f"build-{other}" in sizes and "build-pyapp" in sizes:
            rows.append((f"bundle size vs {other}'s",
                         [sizes["build-pyapp"] / sizes[f"build-{other}"]], "<= 1.00x"))
    installs = [r["peak_rss_kb"] / 1024 for k, r in results.items()
                if k.startswith("install-") and r["peak_rss_kb"] is not None]
    if installs:
        rows.append(("pyapp-install peak RSS", [max(installs)], "< 100 MB"))
    out = []
    for what, values, limit in rows:
        if values is None:
            continue
        op, bound, unit = re.match(r"(<=|<|>=) ([\d.]+) ?(\S+)", limit).groups()
        bound = float(bound)
        held = [{"<=": v <= bound, "<": v < bound, ">=": v >= bound}[op] for v in values]
        # Sizes differ by a few per cent: three decimals keep 0.997x from reading as 1.00x.
        places = 3 if what.startswith("bundle size") else 2
        show = (lambda v: f"{v:.{places}f}x") if unit == "x" else (lambda v: f"{v:.0f} {unit}")
        median = statistics.median(values)
        shown = show(median) + (f" ({show(min(values))}..{show(max(values))})"
                                if len(values) > 1 else "")
        out.append({"target": what, "measured": round(median, 4),
                    "per_round": [round(v, 4) for v in values], "limit": limit,
                    "shown": shown, "pass": all(held)})
    return out


def against_baseline(results):
    """With --baseline: each install scenario's time, this build / the baseline's, per round
    (median and range), and the baseline's own ratios to uv, for the before/after."""
    rows = []
    for key in results:
        if key.startswith("install-"):
            ratios = per_round(results, key, "baseline-" + key)
            if ratios:
                rows.append({"what": f"{results[key]['label']}: this build / baseline",
                             "median": round(statistics.median(ratios), 4),
                             "per_round": [round(r, 4) for r in ratios]})
    for condition in (None, "writer", "neighbour"):
        at = suffix(condition)
        for mine, uv in (("fresh", "cold"), ("second-app", "warm"), ("upgrade", "warm")):
            for who in ("install", "baseline-install"):
                of = "neighbour_p99_s" if condition == "neighbour" else "samples_s"
                ratios = per_round(results, f"{who}-{mine}{at}", f"uv-{uv}{at}", of)
                if ratios:
                    what = ("neighbour's p99" if condition == "neighbour" else "time")
                    rows.append({"what": f"{who} {mine} / uv {uv}{label(condition)} ({what})",
                                 "median": round(statistics.median(ratios), 4),
                                 "per_round": [round(r, 4) for r in ratios]})
    return rows


def machine():
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": model.group(1).strip() if model else platform.machine(),
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg()[0],
    }


def commit():
    head = run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"]).strip()
    dirty = run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"]).strip()
    return head + ("+dirty" if dirty else "")


def report_text(doc):
    m, s = doc["machine"], doc["set"]
    lines = [
        f"pyapp benchmark, commit {doc['commit']}, {doc['profile']} build"
        + ("  (debug: the ratios say nothing about speed)" if doc["profile"] == "debug" else ""),
        f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"load {m['loadavg_start']:.1f} at start, {m['loadavg_end']:.1f} at end",
        f"python {doc['python']['version']} ({doc['python']['path']}); "
        + ", ".join(f"{k} {v}" for k, v in doc["tools"].items()),
        f"set {s['name']}: {s['wheels']} wheels, {fmt_mb(s['wheel_bytes'])}; installed release "
        f"{s['installed_files']:,} files, {fmt_mb(s['installed_bytes'])}",
        f"{doc['rounds']} rounds after {doc['warmup']} warm-up, medians; writer: dd of "
        f"{doc['writer_mb']} MiB",
        "",
        f"{'scenario':<64}{'median':>10}{'min':>10}{'max':>10}{'peak RSS':>11}",
    ]
    for key, r in doc["results"].items():
        line = (f"{r['label']:<64}{fmt_time(r['median_s']):>10}{fmt_time(r['min_s']):>10}"
                f"{fmt_time(r['max_s']):>10}{fmt_rss(r['peak_rss_kb'])}")
        if "neighbour_p99_s" in r:
            line += "  neighbour's fsync p99 " + ", ".join(
                f"{v * 1000:.1f}" for v in r["neighbour_p99_s"]) + " ms"
        lines.append(line)
    if doc["sizes"]:
        lines += ["", f"{'bundle':<64}{'size':>10}"]
    for key, size in doc["sizes"].items():
        lines.append(f"{doc['results'][key]['label']:<64}{fmt_mb(size):>10}")
    lines += ["", "targets: the median of the per-round values (their range); a target holds "
              "when it holds in every round",
              f"{'target':<64}{'measured':>24}{'limit':>10}  result"]
    for t in doc["targets"]:
        lines.append(f"{t['target']:<64}{t['shown']:>24}{t['limit']:>10}  "
                     + ("PASS" if t["pass"] else "FAIL"))
    if doc["baseline"]:
        lines += ["", f"against the baseline ({doc['baseline']['path']}): per-round ratios",
                  f"{'ratio':<76}{'median':>8}  rounds"]
        for row in doc["baseline"]["ratios"]:
            lines.append(f"{row['what']:<76}{row['median']:>7.2f}x  "
                         + " ".join(f"{r:.2f}" for r in row["per_round"]))
    return "\n".join(lines)


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- main


class ArgumentParser(argparse.ArgumentParser):
    """argparse, exiting 1 on bad arguments like the rest of the script."""

    def error(self, message):
        raise Refused(message)


def parse_args():
    sets = sorted(p.stem.removeprefix("requirements-") for p in BENCH.glob("requirements-*.txt"))
    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Results, the reference run and how to read them: BENCHMARKS.md.",
    )
    parser.add_argument("--set", default="full", choices=sets,
                        help="the wheel set, bench/requirements-SET.txt (default: full)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default: 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed rounds first, to fill the page cache (default: 1)")
    parser.add_argument("--profile", choices=["release", "debug"], default="release",
                        help="which build of pyapp to measure (default: release; debug only "
                             "checks that the script runs)")
    parser.add_argument("--python", default=default_python(),
                        help="the interpreter every installer targets and the tools run on "
                             "(default: the system's /usr/bin/python3, else the one running "
                             "this script; pyapp-install refuses one an app user cannot run, "
                             "such as pyenv's under root's home)")
    parser.add_argument("--work-dir", type=Path,
                        help="scratch space: a new or empty directory, or one an earlier run "
                             "used, which is emptied (default: target/bench/scratch)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch space")
    parser.add_argument("--baseline", type=Path,
                        help="a directory holding another build's pyapp-install (e.g. main's "
                             "target/release): its install scenarios run in the same rounds")
    parser.add_argument("--only", default="",
                        help="comma-separated key prefixes of the scenarios to run (install, "
                             "baseline-install, uv, pip, cp, build); default: all")
    parser.add_argument("--writer-mb", type=int, default=3072,
                        help="how much the concurrent writer writes, MiB (default: 3072)")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON on stdout (the table goes to stderr)")
    args = parser.parse_args()
    if args.rounds < 1 or args.warmup < 0 or args.writer_mb < 1:
        raise Refused("--rounds and --writer-mb must be at least 1 and --warmup at least 0")
    if args.baseline and not os.access(args.baseline / "pyapp-install", os.X_OK):
        raise Refused(f"--baseline {args.baseline}: no pyapp-install there")
    args.only = [prefix for prefix in args.only.split(",") if prefix]
    return args


def main():
    args = parse_args()
    if not os.access(GNU_TIME, os.X_OK):
        raise Refused(f"{GNU_TIME} (GNU time, which measures peak RSS) is missing\n"
                      "hint: apt-get install time")
    requirements = BENCH / f"requirements-{args.set}.txt"
    pins = read_pins(requirements)
    python, python_version = describe_python(args.python)
    cache = TARGET / "bench"
    scratch = (args.work_dir or cache / "scratch").resolve()
    host = machine()
    empty_scratch(scratch)
    binaries = cargo_build(args.profile)
    tools = tools_venv(cache, python, python_version)
    wheels = download(cache, tools, args.set, requirements, python_version)
    downloaded = sorted(wheels.glob("*.whl"))
    if len(downloaded) != len(pins):
        raise Broken(f"{wheels}: {len(downloaded)} wheels for {len(pins)} pins")
    try:
        backends = download(cache, tools, "backends", REPO / "tests" / "build-backends.txt",
                            python_version)
        baseline = args.baseline.resolve() if args.baseline else None
        bench = Bench(scratch, binaries, tools, wheels, backends, pins, python, baseline,
                      args.only)
        scenarios = bench.scenarios()
        if not scenarios:
            raise Refused(f"--only {','.join(args.only)}: no such scenario")
        measure(bench, scenarios, args.rounds, args.warmup, args.writer_mb)
        installed_files, installed_bytes = tree_stats(bench.release)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    results = {}
    for s in scenarios:
        times = [x.seconds for x in s.samples]
        results[s.key] = {
            "label": s.label,
            "median_s": round(statistics.median(times), 4),
            "min_s": round(min(times), 4),
            "max_s": round(max(times), 4),
            "samples_s": [round(t, 4) for t in times],
            "peak_rss_kb": s.peak_rss_kb,
        }
        if s.neighbour:
            results[s.key]["neighbour_p99_s"] = [round(p99(x), 5) for x in s.neighbour]
            results[s.key]["neighbour_fsyncs"] = [len(x) for x in s.neighbour]
    sizes = {s.key: max(s.sizes) for s in scenarios if s.sizes}
    host["loadavg_end"] = os.getloadavg()[0]
    doc = {
        "commit": commit(),
        "profile": args.profile,
        "machine": host,
        "python": {"path": str(python), "version": python_version},
        "tools": {
            "pyapp-install": run([binaries / "pyapp-install", "--version"]).split()[-1],
            **{p: v for p, v in read_pins(BENCH / "tools.txt")},
        },
        "set": {
            "name": args.set,
            "wheels": len(downloaded),
            "wheel_bytes": sum(w.stat().st_size for w in downloaded),
            "installed_files": installed_files,
            "installed_bytes": installed_bytes,
        },
        "rounds": args.rounds,
        "warmup": args.warmup,
        "writer_mb": args.writer_mb,
        "results": results,
        "sizes": sizes,
        "targets": targets(results, sizes),
        "baseline": ({"path": str(baseline), "ratios": against_baseline(results)}
                     if baseline else None),
    }
    text = report_text(doc)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(doc, indent=2))
    else:
        print(text)


if __name__ == "__main__":
    try:
        main()
    except Refused as err:
        print(f"bench: error: {err}", file=sys.stderr)
        sys.exit(1)
    except Broken as err:
        print(f"bench: broke: {err}", file=sys.stderr)
        sys.exit(2)
