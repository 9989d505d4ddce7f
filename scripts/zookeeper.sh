# ZooKeeper for scripts/servers (sourced by it, not run): Debian's zookeeper
# package (3.8) on Java 17, started as a plain JVM on loopback.
#
#   zookeeper          one standalone server on 12181 (the tests' server)
#   zk-c1..zk-c3       with --cluster, a 3-server ensemble on clients
#                      12281/12291/12301 (+1 quorum, +2 leader election)
#
# Each keeps its data in its own directory under the run directory, so a
# killed server revives with what it had. Settings the tests rely on:
#   extendedTypesEnabled            TTL nodes (-Dzookeeper.extendedTypesEnabled)
#   znode.container.checkIntervalMs 1000: TTL and empty container nodes go
#                                   within about a second (default 60 s)
#   tickTime=500, minSessionTimeout=1000: sessions can be short (the tests
#                                   of session expiry)
#   maxClientCnxns=0                no per-address connection limit (the
#                                   tests connect many times from 127.0.0.1)
#   4lw.commands.whitelist          srvr (a member's mode: `leader`), mntr,
#                                   cons and wchs (connections and watches)
#   admin.enableServer=false        nothing on port 8080
# The readiness check and the interop tests use kazoo (PyPI, pure Python),
# installed beside the other servers in the cache directory.

ZOOKEEPER_CLIENT=12181
ZOOKEEPER_CLUSTER_MEMBERS=(zk-c1 zk-c2 zk-c3)
KAZOO_VERSION=2.11.0
KAZOO_DIR="$CACHE_DIR/kazoo-$KAZOO_VERSION"
ZOOKEEPER_JAR=/usr/share/java/zookeeper.jar
ZKCLI_BIN=/usr/share/zookeeper/bin/zkCli.sh
SLF4J_SIMPLE_JAR=/usr/share/java/slf4j-simple.jar
zk_member_client() { echo $((12281 + 10 * (${1#zk-c} - 1))); }

install_zookeeper() {
  if [ ! -f "$ZOOKEEPER_JAR" ] || [ ! -x "$ZKCLI_BIN" ]; then
    say "installing ZooKeeper from Debian (zookeeper)"
    command -v apt-get >/dev/null || die "apt-get is missing: install Debian's zookeeper (3.8) by hand"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zookeeper >/dev/null
  fi
  command -v java >/dev/null || die "java is missing: ZooKeeper needs a JRE (17)"
  [ -f "$KAZOO_DIR/kazoo/client.py" ] && return
  say "installing kazoo $KAZOO_VERSION from PyPI (ZooKeeper's Python client, for checks and interop tests)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
    --target "$KAZOO_DIR" "kazoo==$KAZOO_VERSION"
}

# Writes a server's zoo.cfg (and myid, for a member) and starts it.
start_zookeeper() { # name, client port, [member number]
  local name=$1 client=$2 id=${3:-} dir
  running "$name" && return
  check_port "$name"
  dir="$RUN_DIR/$name"
  mkdir -p "$dir/data"
  {
    echo "tickTime=500"
    echo "initLimit=20"
    echo "syncLimit=10"
    echo "dataDir=$dir/data"
    echo "clientPort=$client"
    echo "clientPortAddress=127.0.0.1"
    echo "admin.enableServer=false"
    echo "extendedTypesEnabled=true"
    echo "4lw.commands.whitelist=srvr,mntr,cons,wchs,ruok"
    echo "minSessionTimeout=1000"
    echo "maxSessionTimeout=60000"
    echo "maxClientCnxns=0"
    if [ -n "$id" ]; then
      local member port
      for member in "${ZOOKEEPER_CLUSTER_MEMBERS[@]}"; do
        port=$(zk_member_client "$member")
        echo "server.${member#zk-c}=127.0.0.1:$((port + 1)):$((port + 2))"
      done
    fi
  } >"$dir/zoo.cfg"
  [ -z "$id" ] || echo "$id" >"$dir/data/myid"
  # The jar names no logging backend: slf4j-simple (Debian's libslf4j-java,
  # which the package pulls in) prints warnings and errors to the log.
  local classpath=$ZOOKEEPER_JAR
  [ -f "$SLF4J_SIMPLE_JAR" ] && classpath+=":$SLF4J_SIMPLE_JAR"
  start "$name" java -Xmx256m -XX:+UseSerialGC \
    -Dzookeeper.extendedTypesEnabled=true -Dznode.container.checkIntervalMs=1000 \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.showDateTime=true \
    -cp "$classpath" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
}

# A real round trip through kazoo: write a node, read it back.
zookeeper_answers() { # client port
  PYTHONPATH="$KAZOO_DIR" timeout 10 python3 - "$1" 2>/dev/null <<'PY'
import sys
from kazoo.client import KazooClient
zk = KazooClient(hosts="127.0.0.1:" + sys.argv[1], timeout=2, connection_retry={"max_tries": 0})
zk.start(timeout=2)
try:
    zk.ensure_path("/kvmesh-servers")
    path = "/kvmesh-servers/ready"
    if zk.exists(path):
        zk.set(path, b"ready")
    else:
        zk.create(path, b"ready")
    sys.exit(0 if zk.get(path)[0] == b"ready" else 1)
finally:
    zk.stop()
PY
}

# A member's mode as its `srvr` command says it: leader, follower, standalone.
zookeeper_mode() { # client port
  timeout 5 python3 - "$1" 2>/dev/null <<'PY'
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
    s.sendall(b"srvr")
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
for line in reply.decode().splitlines():
    if line.startswith("Mode: "):
        print(line[len("Mode: "):])
PY
}

zookeeper_leader() {
  local member
  for member in "${ZOOKEEPER_CLUSTER_MEMBERS[@]}"; do
    running "$member" || continue
    [ "$(zookeeper_mode "$(zk_member_client "$member")")" = leader ] && { echo "$member"; return; }
  done
  die "no ZooKeeper leader found"
}

zookeeper_env() {
  echo "KV_ZOOKEEPER_ADDR=127.0.0.1:$ZOOKEEPER_CLIENT"
  if running zk-c1; then
    local m list=""
    for m in "${ZOOKEEPER_CLUSTER_MEMBERS[@]}"; do list+="${list:+,}127.0.0.1:$(zk_member_client "$m")"; done
    echo "KV_ZOOKEEPER_CLUSTER=$list"
  fi
  # ZooKeeper's own clients, for the interop tests.
  echo "KV_ZKCLI_BIN=$ZKCLI_BIN"
  echo "KV_KAZOO_PATH=$KAZOO_DIR"
}
