#!/usr/bin/env python3
"""Issue #16's multi-replica faults, run by tests/ha/run.sh on its PostgreSQL cluster.

Three real `iamlet control-plane --store postgres://...` replicas and three real `iamlet
sidecar` processes, each sidecar given every replica in `--control-plane`:

  a. concurrent admin writes through two replicas to one tenant: every acknowledged write is
     in the change log, whose numbers run 1..N with no gap or duplicate; every sidecar reaches
     the last version, and the versions each one showed meanwhile never went backwards;
  b. SIGKILL of a replica during writes: every acknowledged write is kept; the sidecars that
     streamed from it fail over (another Endpoint, Failovers up) within a bound, measured;
  c. PostgreSQL stopped and started again while replicas and sidecars run: the sidecars go on
     answering Authorize and keep their streams, a write meanwhile fails with the retryable
     ServiceUnavailable, the replicas stay ready and show store_up 0 on /metrics; after the
     restart writes succeed and reach every sidecar;
  d. a replica started while the database is down: /healthz 200 and /readyz 503 (saying why)
     until the database is up, then 200.

Measured figures go to stderr. Standard library only. Every wait is bounded, the whole run by
--deadline; every process started here is stopped on exit (and listed in WORK/replicas.pids
for the suite's own cleanup, should this script be killed).

Usage: replicas.py --bin IAMLET --store URL --password-file F --keys DIR --work DIR --pgctl CMD
(`CMD start|stop` starts or stops the suite's cluster).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

TENANT = "444455556666"
PROFILE = "iamlet-operator"
# Codes after which the same call may be made again: nothing was recorded.
RETRYABLE = ("ServiceUnavailable", "ConcurrentModification", "Throttling")
# Bounds (seconds) of what is measured: generous for a debug build on a shared machine, and
# far below what a broken behaviour takes (forever).
FAILOVER_BOUND = 5.0  # the first retry after a drop is spread over 2 s, then one connection
CONVERGE_BOUND = 10.0  # a write to every sidecar, across replicas (notice or 2 s poll)
RESTART_BOUND = 20.0  # the database back -> writes accepted and served again
READY_BOUND = 15.0  # the database back -> a waiting replica ready (retries every <= 5 s)


class Failed(Exception):
    """A check did not hold."""


def say(text):
    print(f"ha suite: {text}", file=sys.stderr, flush=True)


def step(text):
    print(f"\n== ha suite: {text} ({time.strftime('%H:%M:%S', time.gmtime())})", flush=True)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Run:
    def __init__(self, args):
        self.bin = args.bin
        self.store = args.store
        self.password_file = args.password_file
        self.keys = args.keys
        self.work = args.work
        self.pgctl = args.pgctl
        self.deadline = time.monotonic() + args.deadline
        self.procs = {}
        # When the last write was acknowledged (time.monotonic()).
        self.last_ack = 0.0
        self.pid_file = os.path.join(self.work, "replicas.pids")
        self.env = dict(os.environ, IAMLET_LOG="info",
                        AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.keys, "operator-credentials"))

    # --- processes ---

    def left(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Failed("the multi-replica steps overran their deadline")
        return left

    def spawn(self, name, args):
        log = open(os.path.join(self.work, f"{name}.log"), "ab")
        proc = subprocess.Popen([self.bin, *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=self.env)
        log.close()
        self.procs[name] = proc
        with open(self.pid_file, "a") as f:
            f.write(f"{proc.pid}\n")
        return proc

    def stop_all(self):
        # Sidecars before the replicas whose streams they hold.
        for name in sorted(self.procs, key=lambda n: not n.startswith("sidecar")):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=6)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def replica(self, name, api, http, health=None):
        args = ["control-plane", "--data-dir", os.path.join(self.work, name),
                "--store", self.store, "--store-password-file", self.password_file,
                "--secrets-key-file", os.path.join(self.keys, "secrets.key"),
                # One snapshot signing key for every replica of the store, as one Secret
                # mounted by each (deploy/README.md): the sidecars trust its public key.
                "--snapshot-signing-key", os.path.join(self.keys, "snapshot-signing.key"),
                "--operator-credentials", os.path.join(self.keys, "operator-credentials"),
                "--listen", f"127.0.0.1:{api}", "--http-listen", f"127.0.0.1:{http}",
                "--catch-up-interval", "2s"]
        if health is not None:
            args += ["--health-listen", f"127.0.0.1:{health}"]
        return self.spawn(name, args)

    def sidecar(self, name, port, replicas):
        urls = ",".join(f"http://127.0.0.1:{p}" for p in replicas)
        trust = os.path.join(self.work, "replica-m1", "snapshot-keys.pub")
        return self.spawn(name, ["sidecar", "--control-plane", urls, "--tenants", TENANT,
                                 "--snapshot-keys", trust,
                                 "--state-dir", os.path.join(self.work, name),
                                 "--listen", f"127.0.0.1:{port}"])

    def alive(self, name):
        proc = self.procs[name]
        if proc.poll() is not None:
            raise Failed(f"{name} exited with status {proc.returncode}; see {name}.log")

    # --- clients ---

    def run(self, args, timeout=30):
        try:
            return subprocess.run([self.bin, *args], capture_output=True, text=True,
                                  env=self.env, timeout=min(timeout, self.left()))
        except subprocess.TimeoutExpired:
            raise Failed(f"`iamlet {' '.join(args[:3])} ...` did not answer within {timeout}s")

    def admin(self, port, *args):
        return self.run(["admin", "--endpoint", f"http://127.0.0.1:{port}", "--profile",
                         PROFILE, *args])

    def admin_json(self, port, *args):
        done = self.admin(port, *args)
        if done.returncode != 0:
            raise Failed(f"admin {' '.join(args)} through :{port} failed: {done.stderr.strip()}")
        # A call with no result (put-user-policy) prints nothing.
        return json.loads(done.stdout) if done.stdout.strip() else {}

    def status(self, port):
        """A sidecar's status, or None when it does not answer."""
        done = self.run(["status", "--sidecar", f"http://127.0.0.1:{port}"], timeout=10)
        try:
            return json.loads(done.stdout)
        except ValueError:
            return None

    @staticmethod
    def seq_of(status):
        """The change number of the tenant a sidecar serves (0: none yet)."""
        for t in (status or {}).get("Tenants") or []:
            if t.get("Tenant") == TENANT and t.get("Version"):
                return int(t["Version"].split(".")[1])
        return 0

    def authorize(self, port, user):
        """True: allowed; False: denied; raises when the sidecar gave no answer."""
        done = self.run(["authorize", "--sidecar", f"http://127.0.0.1:{port}",
                         "--principal", f"arn:aws:iam::{TENANT}:user/{user}",
                         "--action", "s3:GetObject",
                         "--resource", "arn:aws:s3:::reports/q3.csv"], timeout=10)
        if done.returncode in (0, 1) and done.stdout.strip():
            return done.returncode == 0
        raise Failed(f"the sidecar on :{port} did not answer Authorize: {done.stderr.strip()}")

    def http_get(self, port, path):
        """(status, body), or (None, reason) when nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, OSError) as e:
            return None, str(e)

    def wait(self, what, bound, check, pause=0.05):
        """Calls check() until it is truthy, at most `bound` s; returns (value, seconds)."""
        start = time.monotonic()
        while True:
            value = check()
            if value:
                return value, time.monotonic() - start
            if time.monotonic() - start > bound:
                raise Failed(f"{what}: not within {bound:.0f}s")
            self.left()
            time.sleep(pause)

    # --- the change log ---

    def changes(self, port):
        """Every change of the tenant, oldest first, read through replica `port`."""
        out, after = [], 0
        while True:
            page = self.admin_json(port, "list-changes", "--tenant", TENANT,
                                   "--after-seq", str(after), "--limit", "100")["Changes"]
            out += page
            if len(page) < 100:
                return out
            after = page[-1]["Seq"]

    def check_log(self, port, acked, unknown=()):
        """The change log holds every acknowledged user, once, numbered 1..N without a gap or
        a duplicate; an unacknowledged write (`unknown`) is there at most once. Returns N."""
        changes = self.changes(port)
        seqs = [c["Seq"] for c in changes]
        if seqs != list(range(1, len(seqs) + 1)):
            dup = sorted({s for s in seqs if seqs.count(s) > 1})
            raise Failed(f"the change numbers are not 1..{len(seqs)} in order (duplicates: {dup})")
        created = [c["Parameters"].get("UserName") for c in changes if c["Action"] == "CreateUser"]
        missing = sorted(set(acked) - set(created))
        if missing:
            raise Failed(f"acknowledged writes are missing from the log: {missing}")
        twice = sorted({u for u in created if created.count(u) > 1})
        if twice:
            raise Failed(f"writes recorded twice: {twice}")
        for user in unknown:
            say(f"  the write under way when its replica died ({user}) "
                f"{'committed' if user in created else 'did not commit'}")
        return len(seqs)

    def converge(self, sidecars, seq, since, bound=CONVERGE_BOUND):
        """Waits until every sidecar serves change `seq`; returns the seconds from `since`
        (a time.monotonic(): when the change was acknowledged) to the last one's."""
        for name, port in sidecars.items():
            self.alive(name)
            self.wait(f"{name} reaching change {seq}", bound - (time.monotonic() - since),
                      lambda: self.seq_of(self.status(port)) >= seq)
        return time.monotonic() - since


class Sampler:
    """Polls the sidecars' versions while writes run: each must only go forward."""

    def __init__(self, run, sidecars):
        self.run, self.sidecars = run, sidecars
        self.seen = {name: [] for name in sidecars}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            for name, port in self.sidecars.items():
                try:
                    seq = self.run.seq_of(self.run.status(port))
                except Failed:
                    continue
                if seq:
                    self.seen[name].append(seq)
            time.sleep(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=15)

    def check(self):
        for name, seqs in self.seen.items():
            back = [(a, b) for a, b in zip(seqs, seqs[1:]) if b < a]
            if back:
                raise Failed(f"{name} went back from change {back[0][0]} to {back[0][1]}")
        return {name: len(set(seqs)) for name, seqs in self.seen.items()}


def writer(run, port, names, acked, failed, stop_on_failure=False):
    """Creates each user through replica `port`, retrying retryable refusals (unless
    `stop_on_failure`: its replica is to be killed); records the acknowledged ones in `acked`
    and the others, whose outcome is not known, in `failed`."""
    for name in names:
        for attempt in range(20):
            done = run.admin(port, "create-user", "--tenant", TENANT, "--user-name", name)
            if done.returncode == 0:
                acked.append(name)
                run.last_ack = time.monotonic()
                break
            if stop_on_failure:
                failed.append((name, done.stderr.strip()))
                return
            if not any(code in done.stderr for code in RETRYABLE):
                failed.append((name, done.stderr.strip()))
                return
            time.sleep(0.05 * (attempt + 1))
        else:
            failed.append((name, "still refused after 20 attempts"))
            return


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag in ("--bin", "--store", "--password-file", "--keys", "--work", "--pgctl"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--deadline", type=float, default=220)
    args = parser.parse_args()
    # The suite's TERM (its watchdog) stops the processes started here too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    run = Run(args)
    try:
        scenario(run)
        run.stop_all()
        # Stopped by SIGTERM, every process ends without a panic.
        for name in run.procs:
            with open(os.path.join(run.work, f"{name}.log"), errors="replace") as log:
                if "panicked" in log.read():
                    raise Failed(f"{name} panicked; see {name}.log")
    except Failed as e:
        say(f"FAILED: {e}")
        return 1
    finally:
        run.stop_all()
    return 0


def scenario(run):
    pgctl = run.pgctl

    def pg(action):
        done = subprocess.run([pgctl, action], capture_output=True, text=True,
                              timeout=min(90, run.left()))
        if done.returncode != 0:
            raise Failed(f"pg_ctl {action} failed: {done.stderr.strip()}")

    step("multi-replica: 3 replicas, 3 sidecars following all of them")
    ports = free_ports(9)
    replicas = {f"replica-m{i + 1}": (ports[2 * i], ports[2 * i + 1]) for i in range(3)}
    # The first replica makes the shared signing key and the sidecars' trust file; the others
    # start once it is there (they read the key, they do not race to make it).
    for n, (name, (api, http)) in enumerate(replicas.items()):
        run.replica(name, api, http)
        if n == 0:
            run.wait(f"{name} ready", 30, lambda: run.http_get(http, "/readyz")[0] == 200 or
                     run.alive(name))
    for name, (api, http) in replicas.items():
        run.wait(f"{name} ready", 30, lambda: run.http_get(http, "/readyz")[0] == 200 or
                 run.alive(name))
    api_ports = [api for api, _ in replicas.values()]
    r1, r2, r3 = api_ports
    run.admin_json(r1, "create-tenant", "--account-id", TENANT, "--alias", "ha-replicas")
    run.admin_json(r2, "create-user", "--tenant", TENANT, "--user-name", "reader")
    run.admin_json(r3, "put-user-policy", "--tenant", TENANT, "--user-name", "reader",
                   "--policy-name", "read", "--policy-document",
                   '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                   '"Action":"s3:GetObject","Resource":"*"}]}')
    sidecars = {f"sidecar-m{i + 1}": ports[6 + i] for i in range(3)}
    for name, port in sidecars.items():
        run.sidecar(name, port, api_ports)
    for name, port in sidecars.items():
        run.wait(f"{name} ready", 30,
                 lambda: (run.status(port) or {}).get("Ready") or run.alive(name))
    for name, port in sidecars.items():
        if not run.authorize(port, "reader"):
            raise Failed(f"{name} denied the reader its policy allows")

    step("multi-replica a: 2 writers x 30 through different replicas, one tenant")
    acked, failed = [], []
    start = time.monotonic()
    with Sampler(run, sidecars) as sampler:
        threads = [threading.Thread(target=writer, args=(
            run, port, [f"a{w}-{i:02d}" for i in range(30)], acked, failed))
            for w, port in ((1, r1), (2, r2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=run.left())
        written = time.monotonic() - start
        if failed:
            raise Failed(f"writes were refused for good: {failed[:3]}")
        if len(acked) != 60:
            raise Failed(f"{len(acked)} of 60 writes were acknowledged")
        last = run.check_log(r3, acked)
        converged = run.converge(sidecars, last, run.last_ack)
    distinct = sampler.check()
    say(f"60 concurrent writes through 2 replicas took {written:.2f}s; change log 1..{last}, "
        f"no gap or duplicate; every sidecar at change {last} within {converged * 1000:.0f} ms of "
        f"the last acknowledged write; versions seen per sidecar, never backwards: {distinct}")
    users = run.admin_json(r3, "list-users", "--tenant", TENANT)["Users"]
    missing = set(acked) - {u["UserName"] for u in users}
    if missing:
        raise Failed(f"replica 3 does not list {sorted(missing)[:5]}")

    step("multi-replica b: SIGKILL of a replica during writes")
    before = {name: run.status(port) for name, port in sidecars.items()}
    victim_url = before["sidecar-m1"]["Endpoint"]
    victim = next(name for name, (api, _) in replicas.items()
                  if victim_url.endswith(f":{api}"))
    victim_port = replicas[victim][0]
    survivor = next(api for name, (api, _) in replicas.items() if name != victim)
    followers = [name for name, st in before.items() if st.get("Endpoint") == victim_url]
    say(f"  killing {victim} ({victim_url}), streamed by {', '.join(followers)}")
    acked_b, failed_b, killed = [], [], {}
    threads = [
        threading.Thread(target=writer, args=(run, victim_port, [f"b1-{i:02d}" for i in range(30)],
                                              acked_b, failed_b, True)),
        threading.Thread(target=writer, args=(run, survivor, [f"b2-{i:02d}" for i in range(30)],
                                              acked_b, failed_b)),
    ]
    for t in threads:
        t.start()
    # Killed while its writer goes on: a write is then on its way to it or in it.
    run.wait(f"10 writes acknowledged by {victim}", 60,
             lambda: sum(u.startswith("b1-") for u in acked_b) >= 10 or failed_b, pause=0.01)
    if failed_b:
        raise Failed(f"writes were refused before the SIGKILL: {failed_b[:3]}")
    run.procs[victim].send_signal(signal.SIGKILL)
    killed["at"] = time.monotonic()
    failover = {}
    # Each follower of the victim shows another endpoint, connected, with one more failover.
    while len(failover) < len(followers):
        run.left()
        for name in followers:
            if name in failover:
                continue
            st = run.status(sidecars[name]) or {}
            if (st.get("Connected") and st.get("Endpoint") not in (None, victim_url)
                    and st.get("Failovers", 0) > before[name].get("Failovers", 0)):
                failover[name] = (time.monotonic() - killed["at"], st)
        if time.monotonic() - killed["at"] > FAILOVER_BOUND + 5:
            break
        time.sleep(0.02)
    for t in threads:
        t.join(timeout=run.left())
    run.procs[victim].wait(timeout=5)
    for name in followers:
        if name not in failover:
            raise Failed(f"{name} did not fail over from {victim} within {FAILOVER_BOUND + 5:.0f}s")
        took, st = failover[name]
        say(f"  {name} failed over to {st['Endpoint']} (Failovers {st['Failovers']}) "
            f"{took * 1000:.0f} ms after the SIGKILL")
        if took > FAILOVER_BOUND:
            raise Failed(f"{name} took {took:.2f}s to fail over, over {FAILOVER_BOUND}s")
    through_victim = [u for u in acked_b if u.startswith("b1-")]
    unknown = [name for name, _ in failed_b if name.startswith("b1-")]
    others_failed = [f for f in failed_b if not f[0].startswith("b1-")]
    if others_failed:
        raise Failed(f"writes through the surviving replica were refused: {others_failed[:3]}")
    last = run.check_log(survivor, acked + acked_b, unknown)
    say(f"  {len(through_victim)} writes acknowledged by {victim} before it died and "
        f"{len(acked_b) - len(through_victim)} by the survivor are all in the log (1..{last})")
    converged = run.converge(sidecars, last, run.last_ack)
    slowest = max(t for t, _ in failover.values())
    say(f"SIGKILL: {len(followers)} sidecar(s) failed over in at most {slowest * 1000:.0f} ms "
        f"(bound {FAILOVER_BOUND:.0f} s); every sidecar at change {last} within "
        f"{converged * 1000:.0f} ms of the last acknowledged write")
    del replicas[victim]
    api_ports = [api for api, _ in replicas.values()]
    ra, rb = api_ports

    step("multi-replica c: PostgreSQL stopped and started under the replicas and sidecars")
    before = {name: run.status(port) for name, port in sidecars.items()}
    metrics_port = next(iter(replicas.values()))[1]
    pg("stop")
    outage = time.monotonic()
    refused = run.admin(ra, "create-user", "--tenant", TENANT, "--user-name", "c-outage")
    if refused.returncode == 0:
        raise Failed("a write succeeded without the database")
    if "ServiceUnavailable" not in refused.stderr:
        raise Failed(f"a write without the database was not ServiceUnavailable: {refused.stderr}")
    say(f"  refused as it should be: {refused.stderr.strip()}")
    if not run.admin_json(rb, "get-user", "--tenant", TENANT, "--user-name", "reader"):
        raise Failed("admin reads stopped with the database")
    # Decisions go on from the sidecars' snapshots while the database is away, for longer
    # than the replicas' catch-up poll (which sees the database gone).
    answered = 0
    while time.monotonic() - outage < 4:
        for name, port in sidecars.items():
            if not run.authorize(port, "reader"):
                raise Failed(f"{name} denied the reader while the database was down")
            answered += 1
    code, text = run.http_get(metrics_port, "/metrics")
    if "\niamlet_control_plane_store_up 0\n" not in text:
        raise Failed("a replica's /metrics did not show the store down (store_up 0)")
    if run.http_get(metrics_port, "/readyz")[0] != 200:
        raise Failed("a replica stopped being ready while its database was down")
    for name, port in sidecars.items():
        st = run.status(port) or {}
        if not st.get("Connected") or st.get("Failovers") != before[name].get("Failovers"):
            raise Failed(f"{name}'s stream did not stay up while the database was down: {st}")
    pg("start")
    back = time.monotonic()
    say(f"  {answered} Authorize calls answered during a {back - outage:.1f}s outage; streams "
        "stayed up; replicas ready with iamlet_control_plane_store_up 0")
    acked_c, failed_c = [], []
    writer(run, rb, ["c-after"], acked_c, failed_c)
    if not acked_c:
        raise Failed(f"no write was accepted after the database came back: {failed_c}")
    accepted = time.monotonic() - back
    last = run.check_log(ra, acked + acked_b + acked_c)
    converged = run.converge(sidecars, last, run.last_ack, RESTART_BOUND)
    run.wait("a replica's /metrics showing the store up again", 10,
             lambda: "\niamlet_control_plane_store_up 1\n" in run.http_get(metrics_port, "/metrics")[1])
    say(f"PostgreSQL restart: a write accepted {accepted * 1000:.0f} ms after the database was "
        f"back, served by every sidecar within {converged * 1000:.0f} ms of its acknowledgement")

    step("multi-replica d: a replica started while the database is down")
    api, http, health = free_ports(3)
    pg("stop")
    run.replica("replica-m4", api, http, health)
    run.wait("the waiting replica's /healthz", 30,
             lambda: run.http_get(http, "/healthz")[0] == 200 or run.alive("replica-m4"))
    waiting_since = time.monotonic()
    while time.monotonic() - waiting_since < 3:
        code, body = run.http_get(http, "/readyz")
        if code != 503 or "cannot reach the store" not in body:
            raise Failed(f"a replica without its database answered /readyz {code}: {body!r}")
        if run.http_get(http, "/healthz")[0] != 200:
            raise Failed("a replica waiting for its database was not alive (/healthz)")
        run.alive("replica-m4")
        time.sleep(0.2)
    say(f"  /healthz 200, /readyz 503 {body.strip()!r}")
    try:
        socket.create_connection(("127.0.0.1", api), timeout=2).close()
        raise Failed("the admin and sync port was open before the store was loaded")
    except OSError:
        pass
    pg("start")
    _, ready = run.wait("the replica ready once its database was up", READY_BOUND,
                        lambda: run.http_get(http, "/readyz")[0] == 200 or run.alive("replica-m4"),
                        pause=0.05)
    if not run.admin_json(api, "get-user", "--tenant", TENANT, "--user-name", "c-after"):
        raise Failed("the replica started without its database does not serve the tenant")
    say(f"start without the database: ready {ready * 1000:.0f} ms after the database was up "
        f"(bound {READY_BOUND:.0f} s)")
    for name in run.procs:
        if name != victim:
            run.alive(name)
    logs = [os.path.join(run.work, f"{n}.log") for n in run.procs]
    secret = open(run.password_file).read().strip()
    for path in logs:
        if secret and secret in open(path, errors="replace").read():
            raise Failed(f"the database password reached {os.path.basename(path)}")


if __name__ == "__main__":
    sys.exit(main())
