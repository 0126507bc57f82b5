package check

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tlm/tracktrace/internal/config"
)

// These tests load the deployment's settings with the service's own
// configuration package (required through a replace of ../..), so a key
// tracktrace does not know, a value it would reject, or a setting that
// Production refuses fails here rather than at the first rollout.

// podEnvironment resolves a container's env as the kubelet would, taking
// secrets from the example Secret and config maps from the manifests.
func podEnvironment(t *testing.T, objs []object, c corev1.Container) []string {
	t.Helper()
	secret := find[*corev1.Secret](t, objs, "db-secrets")
	var env []string
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			if v, ok := secret.StringData[e.ValueFrom.SecretKeyRef.Key]; ok {
				env = append(env, e.Name+"="+v)
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			cm := find[*corev1.ConfigMap](t, objs, e.ValueFrom.ConfigMapKeyRef.Name)
			env = append(env, e.Name+"="+cm.Data[e.ValueFrom.ConfigMapKeyRef.Key])
		default:
			t.Fatalf("%s: env %s: unsupported valueFrom", c.Name, e.Name)
		}
	}
	return env
}

// loadPodConfig loads the configuration a container of the Deployment sees:
// its --config file from the tracktrace-config ConfigMap and its env.
func loadPodConfig(t *testing.T, objs []object, c corev1.Container) *config.Config {
	t.Helper()
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("%s: args %q name no --config file", c.Name, c.Args)
	}
	cm := find[*corev1.ConfigMap](t, objs, "tracktrace-config")
	dir := t.TempDir()
	file := filepath.Join(dir, filepath.Base(c.Args[i+1]))
	if err := os.WriteFile(file, []byte(cm.Data[filepath.Base(c.Args[i+1])]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Options{File: file, Environ: podEnvironment(t, objs, c)})
	if err != nil {
		t.Fatalf("%s: the service rejects its configuration: %v", c.Name, err)
	}
	for _, w := range cfg.Warnings {
		t.Errorf("%s: %s", c.Name, w)
	}
	return cfg
}

func TestDeploymentConfigurationLoads(t *testing.T) {
	objs := manifests(t)
	d := find[*appsv1.Deployment](t, objs, appName)
	pod := d.Spec.Template.Spec
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		cfg := loadPodConfig(t, objs, c)
		if !cfg.IsProduction() {
			t.Errorf("%s: environment %s, want Production", c.Name, cfg.Environment)
		}
		db, err := cfg.EventStoreDatabase()
		if err != nil || db.Engine != config.EnginePostgres {
			t.Errorf("%s: event store %v (%v), want PostgreSQL", c.Name, db.Engine, err)
		}
		if c.Name != "api" {
			continue
		}
		if !cfg.Kafka.Enabled() || !cfg.Authentication.Enabled() || cfg.ConnectionStrings.Redis == "" {
			t.Errorf("api: Kafka %v, authentication %v, Redis %v: production runs all three",
				cfg.Kafka.Enabled(), cfg.Authentication.Enabled(), cfg.ConnectionStrings.Redis != "")
		}
		if _, err := config.ParseRedis(cfg.ConnectionStrings.Redis); err != nil {
			t.Errorf("api: ConnectionStrings.Redis: %v", err)
		}
		if !strings.HasSuffix(cfg.Server.Address, ":8080") {
			t.Errorf("api: Server.Address %s, but the probes and Service use 8080", cfg.Server.Address)
		}
		if !cfg.Monitoring.Metrics.Enabled || cfg.Monitoring.Metrics.Endpoint != d.Spec.Template.Annotations["prometheus.io/path"] {
			t.Errorf("api: metrics at %s (enabled %v), scraped at %s", cfg.Monitoring.Metrics.Endpoint,
				cfg.Monitoring.Metrics.Enabled, d.Spec.Template.Annotations["prometheus.io/path"])
		}

		// Graceful shutdown fits in the grace period: preStop sleep, then
		// up to Server.ShutdownTimeout of draining.
		var preStop time.Duration
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		shutdown := time.Duration(cfg.Server.ShutdownTimeout)
		grace := 30 * time.Second // Kubernetes' default
		if pod.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
		}
		if grace <= preStop+shutdown {
			t.Errorf("terminationGracePeriodSeconds %v <= preStop %v + Server.ShutdownTimeout %v: pods are killed mid-drain",
				grace, preStop, shutdown)
		}
	}
}

func TestComposeConfigurationLoads(t *testing.T) {
	p := loadCompose(t, map[string]string{})
	for _, name := range []string{"tracktrace", "tracktrace-migrate"} {
		s, err := p.GetService(name)
		if err != nil {
			continue
		}
		var env []string
		for k, v := range s.Environment {
			if v != nil {
				env = append(env, k+"="+*v)
			}
		}
		cfg, err := config.Load(config.Options{Dir: t.TempDir(), Environ: env})
		if err != nil {
			t.Fatalf("%s: the service rejects its configuration: %v", name, err)
		}
		for _, w := range cfg.Warnings {
			t.Errorf("%s: %s", name, w)
		}
		if db, _ := cfg.EventStoreDatabase(); db.Engine != config.EnginePostgres {
			t.Errorf("%s: event store engine %s, want PostgreSQL", name, db.Engine)
		}
		if _, err := config.ParseRedis(cfg.ConnectionStrings.Redis); err != nil {
			t.Errorf("%s: ConnectionStrings.Redis: %v", name, err)
		}
	}
}

func TestECSEnvironmentNamesAreSettings(t *testing.T) {
	m := loadTerraform(t)
	var env []string
	for _, name := range m.ecsEnvironment(t) {
		if strings.Contains(name, "__") {
			env = append(env, name+"=x")
		}
	}
	// Values are only known after apply: this checks the names, which an
	// unknown key would turn into a warning.
	cfg, _ := config.Load(config.Options{Dir: t.TempDir(), Environ: env})
	if cfg == nil {
		t.Fatal("config.Load returned no configuration")
	}
	for _, w := range cfg.Warnings {
		t.Errorf("ECS task environment: %s", w)
	}
}
