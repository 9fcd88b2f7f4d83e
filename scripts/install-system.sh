#!/usr/bin/env bash
# Installs, idempotently, what the twin needs from Debian 12 (as root):
# PostgreSQL 15, PostGIS 3, Mosquitto, TimescaleDB (built from Debian 13's
# Apache-2 source package), Chromium for the browser tests, and the checkers of
# deploy/ (docker-compose validates the compose file; promtool the Prometheus rules).
# Every step is skipped when it is already done.
set -euo pipefail

PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
STATE_DIR=${TWIN_APT_STATE:-/var/cache/twin-apt}
log() { printf '[install-system] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/install-system.sh must run as root (it installs Debian packages)." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in postgresql-$PG_MAJOR postgresql-$PG_MAJOR-postgis-3 postgresql-server-dev-$PG_MAJOR \
         mosquitto mosquitto-clients cmake make gcc libkrb5-dev libssl-dev python3-venv \
         chromium fonts-noto-cjk docker-compose; do
  have_pkg "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${need[@]}" >/dev/null
else
  log "Debian packages already installed"
fi

# The machine's own Debian mirror, read from its apt sources, so that the
# private list below points at the same place (we never edit those sources).
debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && u != "" && $0 ~ /bookworm( |$)/ {print u; exit}' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "cannot find the Debian mirror in this machine's apt sources" >&2; exit 1; }
  echo "$uri"
}

if [ -f "$($PG_CONFIG --sharedir)/extension/timescaledb.control" ] \
   && ls "$($PG_CONFIG --pkglibdir)"/timescaledb-*.so >/dev/null 2>&1; then
  log "TimescaleDB already installed for PostgreSQL $PG_MAJOR"
else
  mirror=$(debian_mirror)
  log "fetching the TimescaleDB source package from Debian 13 (private sources list)"
  mkdir -p "$STATE_DIR/lists/partial" "$STATE_DIR/src"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$STATE_DIR/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$STATE_DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$STATE_DIR/lists" -o APT::Get::List-Cleanup=0)
  apt-get "${apt_opts[@]}" update -qq
  cd "$STATE_DIR/src"
  rm -rf timescaledb-*/
  apt-get "${apt_opts[@]}" source --download-only timescaledb >/dev/null
  dsc=$(ls -t timescaledb_*.dsc | head -n1)
  # apt checked the .dsc and tarballs against the signed Sources index;
  # dpkg-source would need the uploader's key (debian-keyring) to re-check.
  dpkg-source --no-check -x "$dsc" >/dev/null
  srcdir=$(ls -d timescaledb-*/ | head -n1)
  log "building TimescaleDB in $STATE_DIR/src/$srcdir (Apache-2 edition)"
  cd "$srcdir"
  # The tarball is not a git checkout: the build's git version probe is noise.
  ./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
              -DPG_CONFIG=$PG_CONFIG >/dev/null 2>&1
  make -C build -j"$(nproc)" install >/dev/null 2>&1
  log "TimescaleDB installed"
fi

# promtool checks deploy/prometheus; only the tool is taken from Debian's prometheus
# package (installing the package would start a Prometheus server on this machine).
if command -v promtool >/dev/null 2>&1; then
  log "promtool already installed"
else
  log "installing promtool from Debian's prometheus package"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1 && dpkg -x prometheus_*.deb x)
  install -m 0755 "$tmp/x/usr/bin/promtool" /usr/local/bin/promtool
  rm -rf "$tmp"
fi

# Debian starts a system-wide mosquitto on 1883 after install; the twin runs
# its own private broker, so the system one is left as the machine had it.
log "done"
