package check

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads ../compose.yaml as `docker compose -f deploy/compose.yaml`
// would: schema-validated, interpolated, paths resolved, with env as the
// environment.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	path, err := filepath.Abs(deployPath("compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(path),
		ConfigFiles: []types.ConfigFile{{Filename: path}},
		Environment: env,
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("tracktrace", true)
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return s
}

func TestComposeLoads(t *testing.T) {
	p := loadCompose(t, map[string]string{})

	for _, name := range []string{"postgres", "redis", "kafka", "tracktrace"} {
		service(t, p, name)
	}

	pg := service(t, p, "postgres")
	if pg.Image != "postgres:15" {
		t.Errorf("postgres image %s, want postgres:15", pg.Image)
	}
	if pg.HealthCheck == nil || len(pg.HealthCheck.Test) == 0 || !strings.Contains(strings.Join(pg.HealthCheck.Test, " "), "pg_isready") {
		t.Error("postgres: want a pg_isready healthcheck")
	}
	if r := service(t, p, "redis"); r.Image != "redis:7" {
		t.Errorf("redis image %s, want redis:7", r.Image)
	}
	k := service(t, p, "kafka")
	if !strings.HasPrefix(k.Image, "apache/kafka:") && !strings.HasPrefix(k.Image, "bitnami/kafka:") {
		t.Errorf("kafka image %s, want apache/kafka or bitnami/kafka", k.Image)
	}
	roles := envValue(k.Environment, "KAFKA_PROCESS_ROLES", "KAFKA_CFG_PROCESS_ROLES")
	if !strings.Contains(roles, "controller") || !strings.Contains(roles, "broker") {
		t.Errorf("kafka: process roles %q, want broker,controller (KRaft, no ZooKeeper)", roles)
	}

	tt := service(t, p, "tracktrace")
	if tt.Build == nil {
		t.Fatal("tracktrace: no build section")
	}
	root, _ := filepath.Abs(repoRoot)
	if filepath.Clean(tt.Build.Context) != root {
		t.Errorf("tracktrace: build context %s, want the repository root %s", tt.Build.Context, root)
	}
	df := tt.Build.Dockerfile
	if !filepath.IsAbs(df) {
		df = filepath.Join(tt.Build.Context, df)
	}
	if want, _ := filepath.Abs(deployPath("Dockerfile")); filepath.Clean(df) != want {
		t.Errorf("tracktrace: dockerfile %s, want %s", df, want)
	}
	if _, err := os.Stat(filepath.Join(tt.Build.Context, "go.mod")); err != nil {
		t.Errorf("tracktrace: build context has no go.mod: %v", err)
	}
	for _, name := range []string{"ConnectionStrings__EventStore", "ConnectionStrings__Redis", "Kafka__BootstrapServers"} {
		if envValue(tt.Environment, name) == "" {
			t.Errorf("tracktrace: no %s", name)
		}
	}
	// Each service_healthy dependency has a healthcheck, and the three
	// stores are among them.
	for _, dep := range []string{"postgres", "redis", "kafka"} {
		d, ok := tt.DependsOn[dep]
		if !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("tracktrace: depends_on %s must have condition service_healthy (%+v)", dep, d)
		}
	}
	for dep, d := range tt.DependsOn {
		if d.Condition == types.ServiceConditionHealthy {
			if s := service(t, p, dep); s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
				t.Errorf("%s: tracktrace waits for it to be healthy, but it has no healthcheck", dep)
			}
		}
	}
	if tt.HealthCheck != nil && len(tt.HealthCheck.Test) > 0 &&
		!slices.Equal(tt.HealthCheck.Test, []string{"CMD", "/tracktrace", "healthcheck"}) {
		t.Errorf("tracktrace: healthcheck %q; the image has no shell or curl, use /tracktrace healthcheck", tt.HealthCheck.Test)
	}
	// Host names in the connection settings are services of the project.
	for _, host := range []string{"postgres:5432", "redis:6379", "kafka:9092"} {
		var found bool
		for _, v := range tt.Environment {
			if v != nil && strings.Contains(*v, host) {
				found = true
			}
		}
		if !found {
			t.Errorf("tracktrace: no setting points at %s", host)
		}
	}
	if envValue(tt.Environment, "Monitoring__Tracing__Enabled") == "true" {
		ep := envValue(tt.Environment, "Monitoring__Tracing__Endpoint")
		if _, err := p.GetService("jaeger"); err != nil || !strings.Contains(ep, "jaeger:") {
			t.Errorf("tracing is on, but endpoint %q is not the jaeger service", ep)
		}
	}
}

func TestComposeInterpolatesPassword(t *testing.T) {
	p := loadCompose(t, map[string]string{"POSTGRES_PASSWORD": "s3cret"})
	if got := envValue(service(t, p, "postgres").Environment, "POSTGRES_PASSWORD"); got != "s3cret" {
		t.Errorf("POSTGRES_PASSWORD = %q", got)
	}
	if got := envValue(service(t, p, "tracktrace").Environment, "ConnectionStrings__EventStore"); !strings.Contains(got, ":s3cret@postgres:") {
		t.Errorf("ConnectionStrings__EventStore = %q does not use POSTGRES_PASSWORD", got)
	}
}

func envValue(env types.MappingWithEquals, names ...string) string {
	for _, n := range names {
		if v, ok := env[n]; ok && v != nil {
			return *v
		}
	}
	return ""
}

// The compose file is for one developer's machine, with authentication off:
// every published port binds to loopback only, and none takes the default
// port of a PostgreSQL or Redis the developer may run already.
func TestComposePortsStayLocal(t *testing.T) {
	p := loadCompose(t, map[string]string{})
	for _, s := range p.Services {
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s on %q, want 127.0.0.1", s.Name, port.Published, port.HostIP)
			}
			if port.Published == "5432" || port.Published == "6379" {
				t.Errorf("%s takes host port %s, which a local server may hold", s.Name, port.Published)
			}
		}
	}
}
