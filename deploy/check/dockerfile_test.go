package check

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// parseDockerfile parses ../Dockerfile with BuildKit's own parser, failing
// on parser warnings and on the lint rules that run at parse time.
func parseDockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(readFile(t, deployPath("Dockerfile"))))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s (line %v)", w.Short, w.Location)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		t.Errorf("Dockerfile lint %s: %s (%v)", rule, msg, loc)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.BaseName, "golang:") {
		t.Errorf("build stage FROM %s, want golang:", build.BaseName)
	}
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") && final.BaseName != "scratch" {
		t.Errorf("final stage FROM %s, want distroless/static or scratch", final.BaseName)
	}

	// The build: a static, trimmed binary of ./cmd/tracktrace with its
	// version stamped, and the module cache mounted.
	var built, cached bool
	for _, c := range build.Commands {
		run, ok := c.(*instructions.RunCommand)
		if !ok {
			continue
		}
		line := strings.Join(run.CmdLine, " ")
		// Mounts are parsed when the command is expanded (with no build args).
		if err := run.Expand(func(word string) (string, error) { return word, nil }); err != nil {
			t.Fatalf("RUN %s: %v", line, err)
		}
		var modCache bool
		for _, m := range instructions.GetMounts(run) {
			if m.Type == instructions.MountTypeCache && m.Target == "/go/pkg/mod" {
				modCache = true
			}
		}
		if strings.Contains(line, "go build") {
			built, cached = true, modCache
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=", "./cmd/tracktrace"} {
				if !strings.Contains(line, want) {
					t.Errorf("go build line lacks %q: %s", want, line)
				}
			}
		}
	}
	if !built {
		t.Error("no `go build` in the build stage")
	}
	if !cached {
		t.Error("go build runs without --mount=type=cache,target=/go/pkg/mod")
	}

	var (
		user       string
		exposed    []string
		health     *instructions.HealthCheckCommand
		entrypoint *instructions.EntrypointCommand
		cmd        *instructions.CmdCommand
		volumes    []string
		copiesBin  bool
	)
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.HealthCheckCommand:
			health = c
		case *instructions.EntrypointCommand:
			entrypoint = c
		case *instructions.CmdCommand:
			cmd = c
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		case *instructions.CopyCommand:
			if c.From == build.Name && c.DestPath == "/tracktrace" {
				copiesBin = true
			}
		case *instructions.RunCommand:
			t.Errorf("RUN in the final stage (%s): distroless has no shell", strings.Join(c.CmdLine, " "))
		}
	}
	if !copiesBin {
		t.Errorf("the final stage does not copy the binary to /tracktrace from stage %q", build.Name)
	}
	uid, gid, _ := strings.Cut(user, ":")
	if user == "" || !numeric(uid) || uid == "0" || (gid != "" && (!numeric(gid) || gid == "0")) {
		t.Errorf("final USER %q, want a numeric non-root user such as 65532:65532", user)
	}
	if !slices.Contains(exposed, "8080") && !slices.Contains(exposed, "8080/tcp") {
		t.Errorf("EXPOSE %v, want 8080", exposed)
	}
	if !slices.Contains(volumes, "/data") {
		t.Errorf("VOLUME %v, want /data for the embedded SQLite default", volumes)
	}
	if health == nil || health.Health == nil {
		t.Fatal("no HEALTHCHECK in the final stage")
	}
	h := health.Health
	if want := []string{"CMD", "/tracktrace", "healthcheck"}; !slices.Equal(h.Test, want) {
		t.Errorf("HEALTHCHECK %q, want %q", h.Test, want)
	}
	if h.Interval != 30*time.Second || h.Timeout != 3*time.Second || h.StartPeriod != 5*time.Second || h.Retries != 3 {
		t.Errorf("HEALTHCHECK timing interval=%v timeout=%v start=%v retries=%d, want 30s 3s 5s 3",
			h.Interval, h.Timeout, h.StartPeriod, h.Retries)
	}
	if entrypoint == nil {
		t.Error("no ENTRYPOINT")
	} else if entrypoint.PrependShell || !slices.Equal(entrypoint.CmdLine, []string{"/tracktrace"}) {
		t.Errorf(`ENTRYPOINT %q (shell form: %v), want ["/tracktrace"] in exec form`, entrypoint.CmdLine, entrypoint.PrependShell)
	}
	if cmd == nil {
		t.Error("no CMD")
	} else if cmd.PrependShell || !slices.Equal(cmd.CmdLine, []string{"serve"}) {
		t.Errorf(`CMD %q (shell form: %v), want ["serve"] in exec form`, cmd.CmdLine, cmd.PrependShell)
	}
}

func TestDockerignore(t *testing.T) {
	// BuildKit reads <Dockerfile>.dockerignore next to the Dockerfile.
	lines := strings.Split(string(readFile(t, deployPath("Dockerfile.dockerignore"))), "\n")
	for _, want := range []string{".git", "deploy", "tracktrace", "data", "bin"} {
		if !slices.Contains(lines, want) {
			t.Errorf("Dockerfile.dockerignore does not exclude %s", want)
		}
	}
	for _, l := range lines {
		if l == "cmd" || l == "internal" || l == "go.mod" || l == "go.sum" || l == "*" {
			t.Errorf("Dockerfile.dockerignore excludes %q, which the build needs", l)
		}
	}
}

func numeric(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
