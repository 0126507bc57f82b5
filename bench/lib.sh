# bench/lib.sh: sourced by bench/http, bench/soak and bench/webhook.
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

# cpu_mark notes the CPU seconds used so far; cpu_report prints those used
# since (the server's, PostgreSQL's and the machine's) and the server's peak
# RSS (VmHWM).
cpu_mark() { cpu_before=($(cpu_seconds)); }
cpu_report() {
	local after=($(cpu_seconds))
	awk -v s="${cpu_before[0]} ${after[0]}" -v a="${cpu_before[1]} ${after[1]}" -v p="${cpu_before[2]} ${after[2]}" 'BEGIN {
		split(s, S, " "); split(a, A, " "); split(p, P, " ")
		printf "CPU seconds during the run: server %.1f, postgres %.1f, machine %.1f\n", S[2]-S[1], P[2]-P[1], A[2]-A[1]
	}'
	echo "server VmHWM: $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
}

cpu_seconds() { # server CPU seconds, all-process CPU seconds, postgres CPU seconds
	local hz; hz=$(getconf CLK_TCK)
	awk -v hz="$hz" '{print ($14+$15)/hz}' /proc/$pid/stat
	awk -v hz="$hz" '/^cpu / {print ($2+$3+$4+$7+$8)/hz}' /proc/stat
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v hz="$hz" '$2=="(postgres)" {s+=$14+$15} END {print s/hz}'
}
