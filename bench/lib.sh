# bench/lib.sh: sourced by bench/http and bench/soak.
#
# start_server ENGINE [VAR=value...] builds tracktrace, starts `tracktrace serve`
# on a fresh SQLite file or a new PostgreSQL database on $PGURL (default
# postgres://postgres@127.0.0.1:5432; $PGPARAMS are appended to its URL) on
# 127.0.0.1:$port with the extra settings given, waits until it is ready, and
# removes it all at exit. It sets bin, pid and work.
start_server() {
	local engine=$1 conn
	shift
	bin=$(mktemp -d)/tracktrace
	go build -o "$bin" ./cmd/tracktrace
	work=$(mktemp -d)
	pgurl=${PGURL:-postgres://postgres@127.0.0.1:5432}
	case $engine in
	sqlite) conn="file:$work/bench.db" ;;
	postgres)
		db=ttbench_$$
		psql "$pgurl/postgres" -qc "CREATE DATABASE $db" >/dev/null
		conn="$pgurl/$db?sslmode=disable${PGPARAMS:+&$PGPARAMS}"
		;;
	*) echo "unknown engine $engine" >&2; exit 2 ;;
	esac
	bench_engine=$engine
	trap cleanup_server EXIT
	env EventStore__ConnectionString="$conn" Server__Address="127.0.0.1:$port" Logging__Level=Warning "$@" \
		"$bin" serve >"$work/serve.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		# Its own server, not another process that holds the port.
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "the server exited (is port $port taken?):" >&2
			cat "$work/serve.log" >&2
			exit 1
		fi
		if curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null; then
			# The answer may have come from another process on the port
			# while this one was still failing to bind it.
			sleep 0.3
			kill -0 "$pid" 2>/dev/null && return
			echo "the server exited (is port $port taken?):" >&2
			cat "$work/serve.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "the server did not become ready:" >&2
	cat "$work/serve.log" >&2
	exit 1
}

cleanup_server() {
	[[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	[[ $bench_engine == postgres ]] && psql "$pgurl/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
	rm -rf "$work" "$(dirname "$bin")"
}
