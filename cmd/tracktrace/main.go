// Command tracktrace is the track & trace service: `tracktrace serve` runs it
// (embedded SQLite by default, PostgreSQL when configured), and the other
// subcommands operate it. `tracktrace help` lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
)

func main() {
	routeDependencyLogs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracktrace:", err)
		var ue *usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run is the whole program, callable from tests. It takes the environment as
// a list (not a getenv function, as in Mat Ryer's pattern) because the
// configuration's Section__Key variables are found by listing it.
func run(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	err := dispatch(ctx, args, environ, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the flag set printed the command's flags
	}
	return err
}

func dispatch(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, environ, stdout, stderr)
	case "migrate":
		return migrate(ctx, rest, environ, stdout, stderr)
	case "projections":
		return projectionsCmd(ctx, rest, environ, stdout, stderr)
	case "loadtest":
		return loadtest(ctx, rest, stdout, stderr)
	case "retention":
		return retentionCmd(ctx, rest, environ, stdout, stderr)
	case "config":
		return showConfig(ctx, rest, environ, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, rest, environ, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "tracktrace", buildVersion())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return &usageError{fmt.Sprintf("unknown command %q\n\n%s", cmd, usage)}
	}
}

const usage = `Usage: tracktrace <command> [flags]

Commands:
  serve         run the service (the default command)
  migrate       apply the database migrations and exit
  projections   status | rebuild NAME: projection checkpoints and lag; replay one
  retention     run [--dry-run]: apply EventStore.RetentionPolicy now (prints a report)
  loadtest      drive a running server and print a JSON report: --url, --scenario
                append-single|append-batch|read-entity|read-timeline|mixed|
                revalidate-entity|revalidate-timeline|epcis-capture, --connections,
                --rate (0: as fast as possible), --duration, --entities, --batch-size,
                --epcis-events, --epcis-epcs, --tenant, --token (tracktrace loadtest
                --help lists them with defaults)
  config        validate the configuration and print it, secrets masked
  healthcheck   probe a running server's /health/live (for container HEALTHCHECKs)
  version       print the version

Common flags (serve, migrate, config, healthcheck, projections, retention run):
  --config FILE          base settings file (default ./appsettings.json)
  --environment NAME     environment name; appsettings.NAME.json is read too
  --secrets-dir DIR      key-per-file secrets (file ConnectionStrings__EventStore, ...)
  --set Section:Key=V    override one setting (repeatable)

Settings come from defaults, appsettings.json, appsettings.{Environment}.json,
environment variables (Section__Key, e.g. ConnectionStrings__EventStore),
secret files and --set, later ones winning.
`

// routeDependencyLogs sends what go-redis and OpenTelemetry log through
// slog's default logger, which serve sets to the service's JSON logger: their
// own loggers would write plain-text lines into the JSON log. Both are
// process-wide settings of those libraries, so they are made once, here, and
// never by run (which tests call concurrently).
func routeDependencyLogs() {
	redis.SetLogger(redisLogs{})
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		slog.Default().Warn("opentelemetry", "error", err)
	}))
}

// redisLogs is go-redis's logger, forwarding to slog's default logger.
type redisLogs struct{}

func (redisLogs) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().WarnContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// parseError turns a flag set's parse error into the command's error: a
// usage error, or flag.ErrHelp itself for -h/--help (run answers it with
// success: the usage has been printed).
func parseError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return flag.ErrHelp
	}
	return &usageError{err.Error()}
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
