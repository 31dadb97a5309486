#!/usr/bin/env python3
"""The deployment files checked offline: they must agree with the binary and with each other.

Usage: packaging_test.py BUILD_DIR

- docs/grafana-dashboard.json is JSON, and every metric its queries use is one weir registers
  (a name in the product's sources); the same for the PromQL in docs/operations.md's alerts;
- every flag packaging/weir.service, the Dockerfile and deploy/k8s pass to weir is in
  `BUILD_DIR/weir --help`;
- deploy/k8s/*.yaml parse (Debian's python3-yaml); the Deployment probes /readyz and /healthz
  (routes weir serves), gives the pod longer than preStop plus --drain-timeout to stop, and has
  a PodDisruptionBudget and a headless gossip Service next to it;
- weir.service stops after longer than --drain-timeout, reloads with SIGHUP, and passes
  `systemd-analyze verify` where systemd-analyze is installed;
- the Dockerfile's runtime stage runs as a non-root user with a HEALTHCHECK on /readyz.

Docker itself is not run (no daemon on the test machines). Exits 1 on any failure.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from weir_harness import build_dir, finish, report

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
PRODUCT = ["core", "net", "ws", "cluster", "store", "server"]


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def registered_metrics():
    """Every "weir_..." string literal in the product's C++ sources."""
    names = set()
    for layer in PRODUCT:
        for path in glob.glob(os.path.join(ROOT, layer, "*.cc")):
            with open(path) as f:
                names.update(re.findall(r'"(weir_[a-z0-9_]+)"', f.read()))
    return names


def metric_names(promql):
    """Metric names a PromQL text uses; a histogram's _bucket/_sum/_count name its family."""
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"\bweir_[a-z0-9_]+", promql)}


def duration_seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", text)
    assert m, f"not a duration: {text}"
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]


def flag_value(command, flag):
    m = re.search(re.escape(flag) + r"[ =]+\"?([^\s\"]+)", command)
    return m.group(1) if m else None


class Checks:
    def __init__(self):
        self.total = self.failed = 0

    def __call__(self, cond, name, detail=None):
        self.total += 1
        self.failed += not cond
        report(cond, name, None if cond else detail)


def check_grafana(checks, known):
    try:
        dashboard = json.loads(read("docs/grafana-dashboard.json"))
    except ValueError as e:
        return checks(False, "grafana dashboard is JSON", str(e))
    checks(True, "grafana dashboard is JSON")
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = set().union(*(metric_names(e) for e in exprs))
    checks(len(exprs) >= 10 and used, "grafana dashboard has queries", f"{len(exprs)} queries")
    unknown = sorted(used - known)
    checks(not unknown, f"grafana dashboard's {len(used)} metrics all exist in the code", unknown)
    for family in ("weir_connections_open", "weir_ws_messages_received_total",
                   "weir_ws_messages_sent_total", "weir_slow_consumer_actions_total",
                   "weir_store_up", "weir_store_batch_seconds", "weir_gossip_members",
                   "weir_gossip_bytes_total"):
        checks(family in used, f"grafana dashboard shows {family}")


def check_alerts(checks, known):
    doc = read("docs/operations.md")
    m = re.search(r"^## Alerts worth setting\n(.*?)(?=^## |\Z)", doc, re.S | re.M)
    checks(m, "docs/operations.md has 'Alerts worth setting'")
    if not m:
        return
    used = metric_names(m.group(1))
    unknown = sorted(used - known)
    checks(used and not unknown, f"the alerts' {len(used)} metrics all exist in the code", unknown)


def weir_commands():
    """(where, command line) for each place the deployment files start weir."""
    unit = read("packaging/weir.service").replace("\\\n", " ")
    docker = read("Dockerfile")
    cmd = re.search(r"^CMD (\[.*?\])\s*$", docker.replace("\\\n", " "), re.M | re.S)
    k8s = read("deploy/k8s/deployment.yaml")
    return [("weir.service", re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)),
            ("Dockerfile CMD", " ".join(json.loads(cmd.group(1)))),
            ("deployment.yaml", k8s[k8s.index("exec /usr/local/bin/weir"):k8s.index("env:")])]


def check_flags(checks, build):
    help_text = subprocess.run([os.path.join(build, "weir"), "--help"], capture_output=True,
                               text=True, timeout=10).stdout
    offered = set(re.findall(r"--[a-z0-9-]+", help_text))
    for where, command in weir_commands():
        flags = set(re.findall(r"(?<![\w-])--[a-z0-9-]+", command))
        missing = sorted(flags - offered)
        checks(flags and not missing, f"{where}: weir knows its {len(flags)} flags", missing)


def check_k8s(checks):
    try:
        import yaml
    except ImportError:
        return checks(False, "python3-yaml is installed (make deps)")
    docs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "deploy/k8s/*.yaml"))):
        try:
            with open(path) as f:
                docs += [(os.path.basename(path), d) for d in yaml.safe_load_all(f) if d]
        except yaml.YAMLError as e:
            checks(False, f"{os.path.basename(path)} parses", str(e))
    kinds = {d["kind"]: d for _, d in docs if d.get("kind") != "Service"}
    services = [d for _, d in docs if d.get("kind") == "Service"]
    checks({"Deployment", "PodDisruptionBudget", "Kustomization"} <= set(kinds),
           "deploy/k8s has a Deployment, a PodDisruptionBudget, a kustomization", sorted(kinds))
    checks(any(s["spec"].get("clusterIP") == "None" and s["spec"].get("publishNotReadyAddresses")
               for s in services), "a headless gossip Service that lists starting pods")
    deployment = kinds.get("Deployment")
    if not deployment:
        return
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    routes = read("server/routes.cc")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        got = container.get(probe, {}).get("httpGet", {}).get("path")
        checks(got == path and f'"{path}"' in routes, f"{probe} asks {path}, a route weir serves",
               got)
    command = " ".join(container.get("args", []))
    drain = duration_seconds(flag_value(command, "--drain-timeout") or "0")
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    sleep = int(pre_stop[-1]) if "sleep" in pre_stop[0] else 0
    grace = pod.get("terminationGracePeriodSeconds", 30)
    checks(drain > 0 and grace > drain + sleep,
           f"terminationGracePeriodSeconds {grace} > preStop {sleep}s + --drain-timeout {drain}s")
    checks(container.get("resources", {}).get("requests"), "the container requests resources")
    referenced = {k for _, d in docs if d.get("kind") == "Kustomization" for k in d["resources"]}
    present = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "deploy/k8s/*.yaml"))}
    checks(referenced == present - {"kustomization.yaml"}, "the kustomization lists every manifest",
           sorted(referenced ^ (present - {"kustomization.yaml"})))


def check_unit(checks):
    unit = read("packaging/weir.service")
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit, re.M | re.S).group(1)
    drain = duration_seconds(flag_value(exec_start, "--drain-timeout") or "0")
    stop = duration_seconds(re.search(r"^TimeoutStopSec=(\S+)$", unit, re.M).group(1))
    checks(drain > 0 and stop > drain, f"TimeoutStopSec {stop}s > --drain-timeout {drain}s")
    checks(re.search(r"^ExecReload=.*-HUP \$MAINPID$", unit, re.M), "reload sends SIGHUP")
    for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                    "PrivateTmp=yes", "SystemCallFilter=@system-service", "KillSignal=SIGTERM"):
        checks(re.search(f"^{re.escape(setting)}$", unit, re.M), f"weir.service sets {setting}")
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        print("---  systemd-analyze is not installed: weir.service not verified by systemd")
        return
    with tempfile.TemporaryDirectory() as tmp:  # verify wants an executable at ExecStart
        path = os.path.join(tmp, "weir.service")
        with open(path, "w") as f:
            f.write(unit.replace("/usr/local/bin/weir", "/bin/true"))
        r = subprocess.run([analyze, "verify", path], capture_output=True, text=True, timeout=30)
    checks(r.returncode == 0 and "weir.service" not in r.stderr,
           "systemd-analyze verify weir.service", r.stderr.strip())


def check_dockerfile(checks):
    docker = read("Dockerfile")
    stages = re.split(r"^FROM ", docker, flags=re.M)[1:]
    checks(len(stages) == 2 and all(s.startswith("debian:bookworm-slim") for s in stages),
           "Dockerfile: two stages on debian:bookworm-slim")
    runtime = stages[-1]
    user = re.search(r"^USER (\S+)", runtime, re.M)
    checks(user and not user.group(1).startswith(("root", "0")), "the runtime runs as non-root")
    checks(re.search(r"^HEALTHCHECK .*/readyz", runtime.replace("\\\n", " "), re.M),
           "HEALTHCHECK asks /readyz")
    checks("-dev" not in runtime, "the runtime stage installs no -dev package")
    sources = re.findall(r"^COPY (?!--from)(\S+)", stages[0], re.M)
    checks(all(os.path.exists(os.path.join(ROOT, s)) for s in sources),
           "the build stage copies files that exist", sources)


def main():
    build = build_dir(__doc__)
    checks = Checks()
    known = registered_metrics()
    check_grafana(checks, known)
    check_alerts(checks, known)
    check_flags(checks, build)
    check_k8s(checks)
    check_unit(checks)
    check_dockerfile(checks)
    return finish(checks.total, checks.failed)


if __name__ == "__main__":
    sys.exit(main())
