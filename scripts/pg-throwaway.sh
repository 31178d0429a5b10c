#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests, listening on 127.0.0.1 only.
#   pg-throwaway.sh start DIR PORT   initdb DIR, start, create database weft,
#                                    print its URL
#   pg-throwaway.sh stop DIR         stop the cluster and remove DIR
# The server refuses to run as root, so as root (CI) it runs as postgres.
set -euo pipefail

BIN=/usr/lib/postgresql/15/bin
usage() { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }

as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

start() {
	local dir=$1 port=$2
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [[ $(id -u) -eq 0 ]]; then
		chown postgres:postgres "$dir"
		# The server runs as postgres, which must reach DIR through its
		# parents: /root/... will not do, /tmp/... will.
		if ! runuser -u postgres -- test -x "$dir"; then
			echo "$0: user postgres cannot reach $dir; use a directory under /tmp" >&2
			exit 1
		fi
	fi
	if [[ ! -f $dir/data/PG_VERSION ]]; then
		as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust \
			--encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
	fi
	# Trust is for loopback only; nothing listens anywhere else.
	cat >"$dir/data/pg_hba.conf" <<HBA
local all all trust
host  all all 127.0.0.1/32 trust
HBA
	if ! as_pg "$BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
			"-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c max_connections=200" \
			>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
	fi
	if ! as_pg "$BIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'weft'" | grep -q 1; then
		as_pg "$BIN/createdb" -h "$dir" -p "$port" -U postgres weft
	fi
	echo "postgres://postgres@127.0.0.1:$port/weft?sslmode=disable"
}

stop() {
	local dir=$1
	[[ -d $dir ]] || return 0
	# Only a directory this script made, or an empty one (a start that
	# failed early), is removed.
	if [[ ! -f $dir/data/PG_VERSION ]]; then
		rmdir "$dir" 2>/dev/null || { echo "$0: $dir holds no cluster; left as it is" >&2; exit 1; }
		return 0
	fi
	if [[ -f $dir/data/postmaster.pid ]]; then
		as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
	fi
	rm -rf "$dir"
}

case ${1:-} in
start) [[ $# -eq 3 ]] || usage; start "$2" "$3" ;;
stop) [[ $# -eq 2 ]] || usage; stop "$2" ;;
*) usage ;;
esac
