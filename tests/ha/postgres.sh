# Sourced by tests/ha/run.sh and tests/ha/bench.sh (which define `fail`): PostgreSQL's
# binaries, installed from Debian's package when initdb is absent, and free loopback ports.

find_pg() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# Sets pg_bin to the newest PostgreSQL's bin directory, installing the package if need be.
ensure_pg() {
    pg_bin=$(find_pg)
    if [[ -z "$pg_bin" || ! -x "$pg_bin/initdb" ]]; then
        command -v apt-get >/dev/null 2>&1 || fail "PostgreSQL is missing and there is no apt-get to install it"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        pg_bin=$(find_pg)
    fi
    [[ -x "$pg_bin/initdb" ]] || fail "no initdb under /usr/lib/postgresql/*/bin"
    id postgres >/dev/null 2>&1 || fail "the postgres user is missing (the Debian package makes it)"
    "$pg_bin/postgres" --version
}

# Prints N free loopback ports.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
}
