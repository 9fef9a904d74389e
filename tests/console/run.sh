#!/usr/bin/env bash
# Issue 21's browser suite: the console of `iamlet up` driven end to end in a real headless
# Chromium (Debian's `chromium`) through the guide's steps 2–4, then the bad-input cases.
#
# Installs what is missing (never skips): Debian's `chromium` and Node.js/npm from the
# machine's package manager, and `playwright-core` (pinned by tests/console/package-lock.json)
# with `npm ci` into ${IAMLET_CONSOLE_NODE:-target/console-node}. Playwright only speaks the
# DevTools protocol to /usr/bin/chromium: it never downloads a browser. Then starts
# `iamlet up` (control plane and sidecar, demo tenant) on free loopback ports, waits until both
# HTTP edges answer /readyz, and runs tests/console/flow.mjs, which signs in as the tenant's
# administrator with the password `up` wrote to $work/console-password.
#
# Screenshots of every step go to ${CONSOLE_SCREENSHOTS:-target/console-screenshots}/NN-name.png
# (emptied first; kept whatever the outcome). Each step prints one line; the first failure
# stops the suite with a non-zero status and keeps $work (up.log, browser.log) for reading.
#
# Usage: tests/console/run.sh. IAMLET_BIN=path uses that binary instead of building one.
# Bounded by SUITE_TIMEOUT seconds (default 900, as the other suites: a fresh machine first
# installs Chromium from apt).
set -euo pipefail
cd "$(dirname "$0")/../.."

CHROMIUM=/usr/bin/chromium

deadline=${SUITE_TIMEOUT:-900}
# The whole suite is bounded: a watchdog kills it (and so every process below) on overrun.
( sleep "$deadline" </dev/null >/dev/null 2>&1
  echo "console suite: timed out after ${deadline}s" >&2
  kill -TERM $$ ) &
watchdog=$!

work=$(mktemp -d "${TMPDIR:-/tmp}/iamlet-console.XXXXXX")
iamlet_pid=""
flow_pid=""
cleanup() {
    local status=$?
    # The flow's own group (node and the Chromium it launched).
    [[ -z "$flow_pid" ]] || kill -KILL -- "-$flow_pid" 2>/dev/null || kill -KILL "$flow_pid" 2>/dev/null || true
    if [[ -n "$iamlet_pid" ]]; then
        kill -TERM "$iamlet_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$iamlet_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$iamlet_pid" 2>/dev/null || true
    fi
    kill "$watchdog" 2>/dev/null || true
    if [[ $status -ne 0 ]]; then
        echo "console suite: FAILED; logs kept in $work, screenshots in ${shots:-?}" >&2
        local log
        for log in "$work"/*.log; do
            [[ -s "$log" ]] || continue
            echo "--- last lines of ${log##*/} (lines naming a secret or password left out)" >&2
            tail -n 30 "$log" | grep -viE 'secret|password' >&2 || true
        done
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 124' TERM

step() { printf '\n== console suite: %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

apt_install() {
    if command -v apt-get >/dev/null 2>&1; then
        # The package manager's own bound: a stuck mirror fails the suite rather than hangs it.
        timeout 480 apt-get update -qq >"$work/apt.log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive timeout 480 apt-get install -y -qq "$@" >>"$work/apt.log" 2>&1 ||
            { echo "console suite: apt-get install $* failed" >&2; exit 1; }
    else
        echo "console suite: $* is missing and there is no apt-get to install it" >&2
        exit 1
    fi
}

step "Chromium, Node.js and playwright-core"
[[ -x $CHROMIUM ]] || apt_install chromium
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
# (The Debian wrapper script complains on stderr about its own memory check; harmless.)
"$CHROMIUM" --version 2>/dev/null
node_dir=${IAMLET_CONSOLE_NODE:-target/console-node}
mkdir -p "$node_dir"
node_dir=$(cd "$node_dir" && pwd)
# `npm ci` installs exactly the lock file; it runs again only when the lock changed (it
# removes node_modules first, so it is not run for nothing). No install script runs, and
# playwright-core itself downloads no browser when installed.
if ! cmp -s tests/console/package-lock.json "$node_dir/package-lock.json" ||
    [[ ! -f "$node_dir/node_modules/playwright-core/package.json" ]]; then
    cp tests/console/package.json tests/console/package-lock.json "$node_dir/"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 300 npm ci --prefix "$node_dir" \
        --no-audit --no-fund --ignore-scripts --silent
fi
node -e 'const p = require(process.argv[1]); console.log(`playwright-core ${p.version}`)' \
    "$node_dir/node_modules/playwright-core/package.json"

step "iamlet up"
if [[ -n ${IAMLET_BIN:-} ]]; then
    bin=$IAMLET_BIN
else
    # A no-op after `cargo test` (which builds it); run alone, it keeps a stale binary out.
    cargo build --quiet --bin iamlet
    bin="$PWD/target/debug/iamlet"
fi
read -r cp_port cp_http_port sc_port sc_http_port < <(node -e '
const net = require("net");
const servers = [0, 1, 2, 3].map(() => net.createServer());
Promise.all(servers.map((s) => new Promise((ok) => s.listen(0, "127.0.0.1", ok)))).then(() => {
  console.log(servers.map((s) => s.address().port).join(" "));
  servers.forEach((s) => s.close());
});')
IAMLET_LOG=${IAMLET_LOG:-info} "$bin" up --data-dir "$work" \
    --control-plane-listen "127.0.0.1:$cp_port" \
    --control-plane-http-listen "127.0.0.1:$cp_http_port" \
    --listen "127.0.0.1:$sc_port" \
    --http-listen "127.0.0.1:$sc_http_port" >"$work/up.log" 2>&1 &
iamlet_pid=$!
node - "$iamlet_pid" "http://127.0.0.1:$cp_http_port/readyz" "http://127.0.0.1:$sc_http_port/readyz" <<'JS'
const [pid, ...urls] = process.argv.slice(2);
const deadline = Date.now() + 60_000;
const alive = () => { try { process.kill(Number(pid), 0); return true; } catch { return false; } };
(async () => {
  for (const url of urls) {
    for (;;) {
      if (!alive()) { console.error("iamlet up exited before it was ready"); process.exit(1); }
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
        if (r.status === 200) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) { console.error(`${url} did not answer 200 within 60 s`); process.exit(1); }
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }
})();
JS
[[ -s "$work/console-password" ]] || { echo "console suite: iamlet up wrote no $work/console-password" >&2; exit 1; }
grep -q "127.0.0.1:$cp_http_port/console" "$work/up.log" ||
    { echo "console suite: iamlet up printed no console URL" >&2; exit 1; }

step "the console in headless Chromium"
shots=${CONSOLE_SCREENSHOTS:-target/console-screenshots}
mkdir -p "$shots"
shots=$(cd "$shots" && pwd)
rm -f "$shots"/*.png
export CONSOLE_URL="http://127.0.0.1:$cp_http_port/console"
export CONSOLE_SCREENSHOTS="$shots"
export CONSOLE_PASSWORD_FILE="$work/console-password"
export CONSOLE_ACCOUNT=111122223333
export CONSOLE_ADMIN_USER=admin
export CONSOLE_CHROMIUM=$CHROMIUM
export CONSOLE_NODE_MODULES="$node_dir/node_modules"
export CONSOLE_WORK="$work"
export IAMLET_BIN="$bin"
export IAMLET_SIDECAR="http://127.0.0.1:$sc_port"
# The flow checks what the console created with `iamlet admin` as the demo's administrator;
# the caller's own AWS setup cannot leak in.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^AWS_' || true)
export IAMLET_ENDPOINT="http://127.0.0.1:$cp_port"
export AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
# In the background and in its own process group, so that the watchdog's TERM is handled at
# once (bash runs a trap only after a foreground child ends) and cleanup stops Chromium too.
set -m
node tests/console/flow.mjs &
flow_pid=$!
set +m
wait "$flow_pid"
flow_pid=""

step "passed ($(find "$shots" -name '*.png' | wc -l) screenshots in $shots)"
