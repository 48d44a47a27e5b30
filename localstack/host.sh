#!/usr/bin/env bash
# LocalStack without Docker ("host mode"), for the LocalStack test lane (npm run test:localstack).
#   bash localstack/host.sh install     LocalStack into .venv-localstack/, DynamoDB Local from Maven
#                                      Central; idempotent, a few seconds when already installed
#   bash localstack/host.sh start       start on 127.0.0.1 (LOCALSTACK_PORT, default: a free port),
#                                      wait for health, check every listening socket is loopback;
#                                      prints the endpoint (also in .sluice/localstack/endpoint)
#   bash localstack/host.sh stop        SIGTERM to LocalStack, SIGKILL to what is left of it after 20 s
#   bash localstack/host.sh status      endpoint and listening sockets, or "not running"
#   bash localstack/host.sh dynamodb-local [port]   DynamoDB Local alone (default port 8123), in
#                                      the foreground: for bench:scale's DynamoDB (docs/scale.md)
# Needs Python 3.13 (LOCALSTACK_PYTHON, python3.13 on PATH or a pyenv 3.13), a JDK 17+ (java,
# javac, jar), mvn, openssl, curl, ss. Logs: .sluice/localstack/localstack.log. See README.md here.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOST_DIR="$ROOT/localstack/host"
LOCALSTACK_VERSION=2026.3.0
DDB_VERSION=2.6.1
DDB_LAYOUT=1        # bump when install_dynamodb_local changes what it builds: reinstalls
VENV="${LOCALSTACK_VENV:-$ROOT/.venv-localstack}"
STATE="$ROOT/.sluice/localstack"                  # LocalStack's FILESYSTEM_ROOT, pid, log, endpoint
LIBS="$STATE/var/lib/localstack/lib"               # LocalStack's VAR_LIBS under FILESYSTEM_ROOT
DDB_DIR="$LIBS/dynamodb-local/2"                   # where LocalStack looks for DynamoDBLocal.jar
PID_FILE="$STATE/localstack.pid"
LOG="$STATE/localstack.log"
SERVICES_DEFAULT=sqs,dynamodb,s3,stepfunctions,scheduler,lambda,apigateway,cloudformation,iam,sts,ssm,logs,events

WORK_DIR=""
trap '[ -z "$WORK_DIR" ] || rm -rf "$WORK_DIR"' EXIT
say() { echo "localstack/host.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# A hash of the files an install is made from: a change to any of them reinstalls.
fingerprint() { cat "$@" | sha256sum | cut -c1-16; }

find_python() {
  local c candidates=()
  [ -n "${LOCALSTACK_PYTHON:-}" ] && candidates+=("$LOCALSTACK_PYTHON")
  command -v python3.13 >/dev/null 2>&1 && candidates+=("$(command -v python3.13)")
  # pyenv's shim for a version that is not selected fails, so also try its versions directly.
  for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do [ -x "$c" ] && candidates+=("$c"); done
  for c in "${candidates[@]}"; do
    if "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)' >/dev/null 2>&1; then
      echo "$c"; return 0
    fi
  done
  die "LocalStack $LOCALSTACK_VERSION needs Python 3.13 (its code uses warnings.deprecated, new in 3.13; 3.14 is untested): none found. Set LOCALSTACK_PYTHON, put python3.13 on PATH or run: pyenv install 3.13"
}

install_localstack() {
  local marker="$VENV/.sluice-localstack-$LOCALSTACK_VERSION-$(fingerprint "$HOST_DIR/constraints.txt")"
  if [ -f "$marker" ] && [ -x "$VENV/bin/python" ]; then return 0; fi
  local py; py="$(find_python)"
  say "installing localstack-core $LOCALSTACK_VERSION into $VENV (python: $py; a few minutes)"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  # The constraints are a pip freeze of a venv that worked. cbor2<6: LocalStack imports
  # cbor2._decoder, which cbor2 6 removed. service-identity: twisted imports it at start.
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -c "$HOST_DIR/constraints.txt" \
    "localstack-core[runtime]==$LOCALSTACK_VERSION" "cbor2<6" service-identity
  "$VENV/bin/python" -c 'import localstack.runtime.main' || die "localstack-core installed but does not import"
  touch "$marker"
}

java_home() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ]; then echo "$JAVA_HOME"; return; fi
  command -v javac >/dev/null 2>&1 || die "a JDK 17+ is needed (javac not found; e.g. apt-get install openjdk-17-jdk-headless)"
  dirname "$(dirname "$(readlink -f "$(command -v javac)")")"
}

# Puts DynamoDB Local where LocalStack looks for it, in place of LocalStack's own installer (which
# downloads a zip from CloudFront, an agent jar from GitHub and a JDK 21 from Adoptium).
install_dynamodb_local() {
  local marker="$DDB_DIR/.sluice-dynamodb-local-$DDB_VERSION-$DDB_LAYOUT-$(fingerprint "$HOST_DIR/dynamodb-local-pom.xml" "$HOST_DIR/LoopbackDynamoDBLocal.java" "$HOST_DIR/NoopAgent.java")"
  local jhome; jhome="$(java_home)"
  if [ -f "$marker" ] && [ -e "$LIBS/java/21/bin/java" ]; then return 0; fi
  command -v mvn >/dev/null 2>&1 || die "mvn is needed to fetch DynamoDB Local from Maven Central (apt-get install maven)"
  "$jhome/bin/java" -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || die "DynamoDB Local 2.x needs Java 17+; $jhome/bin/java is: $("$jhome/bin/java" -version 2>&1 | head -1)"
  say "installing DynamoDB Local $DDB_VERSION from Maven Central into $DDB_DIR"
  local work; work="$(mktemp -d)"; WORK_DIR="$work"
  cp "$HOST_DIR/dynamodb-local-pom.xml" "$work/pom.xml"
  if ! (cd "$work" && mvn -B -Dstyle.color=never -Dddblocal.version="$DDB_VERSION" dependency:copy-dependencies \
     -DoutputDirectory="$work/lib" -DincludeScope=runtime) >"$work/mvn.log" 2>&1; then
    tail -30 "$work/mvn.log" >&2; die "mvn could not fetch DynamoDB Local $DDB_VERSION from Maven Central (above)"
  fi
  rm -rf "$DDB_DIR"; mkdir -p "$DDB_DIR/DynamoDBLocal_lib" "$work/classes"
  cp "$work"/lib/* "$DDB_DIR/DynamoDBLocal_lib/"

  # DynamoDBLocal.jar: the loopback launcher (LoopbackDynamoDBLocal.java) with a manifest that puts
  # DynamoDBLocal_lib/*.jar on the class path. LocalStack runs
  # `java -javaagent:<agent> -Djava.library.path=DynamoDBLocal_lib -jar DynamoDBLocal.jar -port N -inMemory`.
  "$jhome/bin/javac" --release 17 -d "$work/classes" -cp "$DDB_DIR/DynamoDBLocal_lib/*" "$HOST_DIR/LoopbackDynamoDBLocal.java"
  local cp="" j
  for j in "$DDB_DIR"/DynamoDBLocal_lib/*.jar; do cp="$cp DynamoDBLocal_lib/$(basename "$j")"; done
  # Manifest lines are at most 72 bytes; a continuation line starts with one space.
  { echo "Manifest-Version: 1.0"
    echo "Main-Class: LoopbackDynamoDBLocal"
    echo "Class-Path:$cp" | fold -w 71 | sed '2,$s/^/ /'
  } > "$work/MANIFEST.MF"
  "$jhome/bin/jar" cfm "$DDB_DIR/DynamoDBLocal.jar" "$work/MANIFEST.MF" -C "$work/classes" .

  # The agent jar LocalStack always passes (-javaagent:), here a no-op (NoopAgent.java).
  mkdir -p "$work/agent"
  "$jhome/bin/javac" --release 17 -d "$work/agent" "$HOST_DIR/NoopAgent.java"
  printf 'Premain-Class: NoopAgent\n' > "$work/agent.mf"
  "$jhome/bin/jar" cfm "$DDB_DIR/ddb-local-loader-0.1.jar" "$work/agent.mf" -C "$work/agent" NoopAgent.class

  # LocalStack runs DynamoDB Local with "its" Java 21 from $LIBS/java/21; a local JDK 17+ will do.
  mkdir -p "$LIBS/java"; rm -rf "$LIBS/java/21"; ln -s "$jhome" "$LIBS/java/21"
  touch "$marker"
}

cmd_install() {
  mkdir -p "$STATE"
  install_localstack
  install_dynamodb_local
}

# A process that has exited but is not yet reaped (a zombie) counts as gone.
alive() { local s; s="$(ps -o stat= -p "$1" 2>/dev/null)" && [ -n "$s" ] && [ "${s#Z}" = "$s" ]; }

running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid; pid="$(cat "$PID_FILE")"
  [ -n "$pid" ] && alive "$pid" && echo "$pid"
}

# LocalStack's pid and its descendants. Not a process group: LocalStack starts DynamoDB Local in a
# session of its own (start_new_session).
tree_pids() {
  ps -eo pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      keep[root] = 1; changed = 1
      while (changed) { changed = 0; for (i in pids) { p = pids[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } } }
      for (p in keep) print p
    }'
}

# Listening TCP and UDP sockets of LocalStack and its children (the DynamoDB Local JVM).
tree_listeners() {
  local pids; pids="$(tree_pids "$1" | tr '\n' ' ')"
  ss -ltunpH 2>/dev/null | while read -r line; do
    for p in $pids; do case "$line" in *"pid=$p,"*) echo "$line"; break;; esac; done
  done
}

cmd_start() {
  local pid
  if pid="$(running_pid)"; then die "already running (pid $pid, $(cat "$STATE/endpoint" 2>/dev/null)); stop it first"; fi
  [ -x "$VENV/bin/python" ] || die "not installed: run bash localstack/host.sh install"
  mkdir -p "$STATE"
  local port="${LOCALSTACK_PORT:-}"
  if [ -z "$port" ]; then
    port="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  fi
  case "$port" in ''|*[!0-9]*) die "LOCALSTACK_PORT is not a port number: '$port'";; esac

  # A self-signed cert for the gateway made with openssl: LocalStack's own generator calls
  # pyOpenSSL's X509.add_extensions, which current pyOpenSSL no longer has (the start crashes).
  local cert="$STATE/server.test.pem"
  if [ ! -s "$cert" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,DNS:localhost.localstack.cloud,IP:127.0.0.1" \
      -keyout "$STATE/server.key" -out "$STATE/server.crt" 2>/dev/null
    cat "$STATE/server.key" "$STATE/server.crt" > "$cert"
  fi
  # A fresh state directory per start (nothing persists: PERSISTENCE=0, DynamoDB in memory).
  rm -rf "$STATE/var/lib/localstack/tmp" "$STATE/tmp" "$STATE/var/lib/localstack/cache"

  (
    export FILESYSTEM_ROOT="$STATE"
    export OVERRIDE_IN_DOCKER=0               # host-mode paths even where LocalStack thinks it is in a container
    export GATEWAY_LISTEN="127.0.0.1:$port"   # loopback only ...
    export GATEWAY_SERVER=hypercorn           # ... which the default server (twisted) ignores: it binds 0.0.0.0
    export LOCALSTACK_HOST="127.0.0.1:$port"  # the host put into returned URLs (queue URLs etc.)
    export SQS_ENDPOINT_STRATEGY=path         # queue URLs http://127.0.0.1:PORT/queue/<region>/<account>/<name>
    export DNS_ADDRESS=0                      # no DNS server on :53
    export SKIP_SSL_CERT_DOWNLOAD=1 CUSTOM_SSL_CERT_PATH="$cert"
    export DISABLE_EVENTS=1                   # no analytics calls
    export SERVICES="${LOCALSTACK_SERVICES:-$SERVICES_DEFAULT}"
    export EAGER_SERVICE_LOADING=1            # start DynamoDB Local now: fail at start, not in a test
    export DYNAMODB_IN_MEMORY=1 PERSISTENCE=0
    export SLUICE_DYNAMODB_LOCAL_HOST=127.0.0.1   # read by LoopbackDynamoDBLocal
    export DEBUG="${DEBUG:-0}"
    unset AWS_ENDPOINT_URL
    # Its own session, apart from the caller's terminal signals; the pid file names it for stop.
    exec setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$PID_FILE" \
      "$VENV/bin/python" "$HOST_DIR/run_localstack.py" </dev/null >"$LOG" 2>&1
  ) &
  local endpoint="http://127.0.0.1:$port"
  for _ in $(seq 1 50); do [ -s "$PID_FILE" ] && break; sleep 0.1; done
  pid="$(cat "$PID_FILE" 2>/dev/null)" || die "LocalStack did not start; see $LOG"
  local deadline=$((SECONDS + ${LOCALSTACK_START_TIMEOUT:-180}))
  until curl -sf --max-time 5 "$endpoint/_localstack/health" >/dev/null 2>&1; do
    if ! alive "$pid"; then tail -20 "$LOG" >&2; die "LocalStack exited at start; see $LOG"; fi
    if [ "$SECONDS" -ge "$deadline" ]; then tail -20 "$LOG" >&2; cmd_stop; die "LocalStack did not answer on $endpoint/_localstack/health within ${LOCALSTACK_START_TIMEOUT:-180} s; see $LOG"; fi
    sleep 1
  done
  # Every service it was asked for must be available or running (DynamoDB Local: started eagerly).
  local health; health="$(curl -sf --max-time 5 "$endpoint/_localstack/health")"
  local bad; bad="$(printf '%s' "$health" | SERVICES="${LOCALSTACK_SERVICES:-$SERVICES_DEFAULT}" "$VENV/bin/python" -c '
import json, os, sys
s = json.load(sys.stdin)["services"]
asked = os.environ["SERVICES"].split(",")
print(" ".join(f"{k}={s.get(k)}" for k in asked if s.get(k) not in ("available", "running")))
')"
  # DynamoDB Local is the one process LocalStack spawns; its port must be open before the check.
  local listeners="" non_loopback
  for _ in $(seq 1 30); do
    listeners="$(tree_listeners "$pid")"
    [ "$(printf '%s\n' "$listeners" | grep -c 'java')" -ge 1 ] && break
    sleep 1
  done
  non_loopback="$(printf '%s\n' "$listeners" | awk 'NF && $5 !~ /^(127\.[0-9.]+|\[::1\]|\[::ffff:127\.[0-9.]+\]):[0-9]+$/')"
  if [ -n "$non_loopback" ]; then
    cmd_stop
    die "LocalStack or DynamoDB Local listens beyond loopback:
$non_loopback"
  fi
  printf '%s\n' "$listeners" | grep -q java || { cmd_stop; die "DynamoDB Local (java) is not listening; see $LOG"; }
  [ -z "$bad" ] || say "services not available: $bad (see $LOG)"
  echo "$endpoint" > "$STATE/endpoint"
  say "LocalStack $LOCALSTACK_VERSION up on $endpoint (pid $pid); listening, all on loopback:"
  printf '%s\n' "$listeners" | awk '{print "  " $1 " " $5 " " $7}' >&2
  echo "$endpoint"
}

cmd_stop() {
  local pid tree
  if ! pid="$(running_pid)"; then rm -f "$PID_FILE" "$STATE/endpoint"; say "not running"; return 0; fi
  tree="$(tree_pids "$pid" | tr '\n' ' ')"
  kill -TERM "$pid" 2>/dev/null || true
  # LocalStack stops DynamoDB Local itself; wait up to 20 s for the whole tree.
  local left="" p
  for _ in $(seq 1 40); do
    left=""
    for p in $tree; do if alive "$p"; then left="$left $p"; fi; done
    [ -z "$left" ] && break
    sleep 0.5
  done
  # Not seen since run_localstack.py; LocalStack's state is in memory, so nothing is lost.
  if [ -n "$left" ]; then
    say "still running after SIGTERM (20 s for LocalStack):$left; SIGKILL"
    # shellcheck disable=SC2086 # one word per pid
    kill -KILL $left 2>/dev/null || true
  fi
  rm -f "$PID_FILE" "$STATE/endpoint"
  say "stopped (pid $pid)"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "running: pid $pid, $(cat "$STATE/endpoint" 2>/dev/null || echo 'endpoint not yet up')"
    tree_listeners "$pid"
  else
    echo "not running"
  fi
}

# DynamoDB Local alone, in the foreground, on loopback (the launcher binds 127.0.0.1): for
# `AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:<port> npm run bench:scale ...`, where moto's one
# DynamoDB process answered in 0.2-5 s under 12,000 subtasks (docs/scale.md).
cmd_dynamodb_local() {
  local port="${1:-8123}" jhome
  install_dynamodb_local
  jhome="$(java_home)"
  say "DynamoDB Local $DDB_VERSION on 127.0.0.1:$port (in memory); export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$port"
  cd "$DDB_DIR"
  exec "$jhome/bin/java" -Djava.library.path=DynamoDBLocal_lib -jar DynamoDBLocal.jar -port "$port" -inMemory
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  dynamodb-local) cmd_dynamodb_local "${2:-}" ;;
  *) die "usage: bash localstack/host.sh install|start|stop|status|dynamodb-local [port]" ;;
esac
