#!/usr/bin/env bash
# Installs PostgreSQL 15 from bookworm and pgvector 0.8 built from Debian's
# own source package in trixie (bookworm's pgvector is 0.4, which lacks the
# iterative index scans that catalog-filtered search needs). Only trixie's
# sources are added, so no trixie binary can be installed by accident.
# Idempotent and quiet on success; run as root.
set -euo pipefail

PG=15
PG_CONFIG=/usr/lib/postgresql/$PG/bin/pg_config
if [[ -f /usr/share/postgresql/$PG/extension/vector.control ]]; then
	exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() {
	if ! "$@" >>"$log" 2>&1; then
		cat "$log" >&2
		echo "pgvector-install: failed: $*" >&2
		exit 1
	fi
}

export DEBIAN_FRONTEND=noninteractive
cat >/etc/apt/sources.list.d/weft-trixie-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
run apt-get update
run apt-get install -y --no-install-recommends \
	postgresql-$PG postgresql-server-dev-$PG postgresql-client-$PG dpkg-dev build-essential

# apt-cache showsrc names the source package that builds the binary
# postgresql-17-pgvector (it is "pgvector" in trixie).
src=$(apt-cache showsrc postgresql-17-pgvector 2>/dev/null |
	awk '/^Package:/ {print $2; exit}')
if [[ -z $src ]]; then
	echo "pgvector-install: no pgvector source package in the apt index" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$work"' EXIT
cd "$work"
run apt-get source --only-source "$src"
dir=$(find . -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n1)
if [[ -z $dir ]]; then
	echo "pgvector-install: apt-get source $src unpacked nothing" >&2
	exit 1
fi
run make -C "$dir" PG_CONFIG=$PG_CONFIG
run make -C "$dir" PG_CONFIG=$PG_CONFIG install
test -f /usr/share/postgresql/$PG/extension/vector.control
