# shellcheck shell=bash
# Sourced by scripts/run and scripts/test: find a PostgreSQL server for them,
# or start a private, throwaway one.
#
#   pg_ensure NAME   sets PG_SERVER_URL (a superuser URL on the server to use);
#                    NAME (run or test) names the private server, if one is
#                    started, and picks its settings.
#   pg_stop          stops the private server if pg_ensure started it.
#
# The order: DATABASE_URL when set; else a server answering on 127.0.0.1:5432;
# else a private server from the machine's PostgreSQL binaries (installing
# Debian's postgresql package first when they are missing and we are root),
# with its data in .pgdata/NAME (git-ignored) and a port of its own.

PG_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_STARTED=0

pg_log() { echo "postgres: $*" >&2; }

pg_port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

pg_bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
	done
	if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
		pg_config --bindir; return 0
	fi
	return 1
}

pg_install() {
	if [ "$(id -u)" -ne 0 ]; then
		pg_log "no PostgreSQL server binaries, and not root to install them: install your distribution's postgresql package, or set DATABASE_URL"
		return 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		pg_log "no PostgreSQL server binaries and no apt-get: install PostgreSQL, or set DATABASE_URL"
		return 1
	fi
	pg_log "installing the distribution's postgresql package (once; this takes a minute)"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

# pg_as_owner runs a command as the unprivileged user that owns the private
# server: initdb and postgres refuse to run as root.
pg_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		# From / because the clone may be somewhere that user cannot enter.
		(cd / && runuser -u "$PG_OS_USER" -- "$@")
	else
		"$@"
	fi
}

pg_ensure() {
	local name=$1
	if [ -n "${DATABASE_URL:-}" ]; then
		PG_SERVER_URL=$DATABASE_URL
		pg_log "using DATABASE_URL"
		return 0
	fi
	if pg_port_open 127.0.0.1 5432; then
		PG_SERVER_URL="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
		pg_log "using the server on 127.0.0.1:5432"
		return 0
	fi
	pg_start_private "$name"
}

pg_start_private() {
	local name=$1 extra=""
	PG_BINDIR=$(pg_bindir) || { pg_install && PG_BINDIR=$(pg_bindir); } || {
		pg_log "could not find PostgreSQL's initdb and pg_ctl"; return 1; }

	PG_OS_USER=$(id -un)
	PG_BASE="$PG_REPO_ROOT/.pgdata/$name"
	mkdir -p "$PG_BASE"
	if [ "$(id -u)" -eq 0 ]; then
		PG_OS_USER=postgres
		id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
		chown "$PG_OS_USER" "$PG_BASE"
		# A clone under a private home (/root is 0700) is out of the
		# unprivileged user's reach: keep the data under /tmp instead.
		if ! pg_as_owner test -w "$PG_BASE"; then
			PG_BASE="/tmp/inbox-pg-$(printf %s "$PG_REPO_ROOT" | cksum | cut -d' ' -f1)/$name"
			mkdir -p "$PG_BASE" && chown "$PG_OS_USER" "$PG_BASE" "$(dirname "$PG_BASE")"
			echo "$PG_BASE" >"$PG_REPO_ROOT/.pgdata/$name/moved-to"
		fi
	fi

	if [ ! -f "$PG_BASE/data/PG_VERSION" ]; then
		pg_log "initdb in $PG_BASE/data"
		pg_as_owner "$PG_BINDIR/initdb" -D "$PG_BASE/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$PG_BASE/initdb.log" 2>&1 || {
			cat "$PG_BASE/initdb.log" >&2; return 1; }
	fi

	if pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_BASE/data" status >/dev/null 2>&1; then
		PG_PORT=$(cat "$PG_BASE/port")
		pg_log "reusing the private server already running on 127.0.0.1:$PG_PORT"
	else
		# The test server is thrown away after the run: durability buys nothing.
		[ "$name" = test ] && extra="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
		# The benchmark reports each statement's cost (bench/run/statements.go).
		[ "$name" = bench ] && extra="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=off"
		# A port nothing listens on can still be taken: an outgoing
		# connection may hold it as its local port (55432 is in Linux's
		# ephemeral range), and then the bind fails. Try the next port.
		PG_PORT=55432
		local tries=0
		while :; do
			while pg_port_open 127.0.0.1 "$PG_PORT"; do PG_PORT=$((PG_PORT + 1)); done
			echo "$PG_PORT" >"$PG_BASE/port"
			pg_log "starting a private server on 127.0.0.1:$PG_PORT ($PG_BINDIR)"
			rm -f "$PG_BASE/server.log" # pg_ctl makes it anew, as its owner
			if pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_BASE/data" -l "$PG_BASE/server.log" -w -t 60 \
				-o "-c port=$PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_BASE -c max_connections=300 $extra" \
				start >/dev/null 2>&1; then
				break
			fi
			tries=$((tries + 1))
			if ! grep -q "Address already in use" "$PG_BASE/server.log" || [ "$tries" -ge 20 ]; then
				tail -n 20 "$PG_BASE/server.log" >&2
				return 1
			fi
			pg_log "127.0.0.1:$PG_PORT is taken by another socket; trying the next port"
			PG_PORT=$((PG_PORT + 1))
		done
		PG_STARTED=1
	fi
	PG_SERVER_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
}

pg_stop() {
	if [ "$PG_STARTED" = 1 ]; then
		pg_log "stopping the private server on 127.0.0.1:$PG_PORT"
		pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_BASE/data" -m fast -w stop >/dev/null || true
		PG_STARTED=0
	fi
}

# pg_url_with DB_URL PARAM appends a query parameter to a URL.
pg_url_with() {
	case "$1" in
	*\?*) echo "$1&$2" ;;
	*) echo "$1?$2" ;;
	esac
}
