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
	"github.com/tlm/tracktrace/internal/kafka/kafkatest"
)

// These tests load the deployment's settings with the service's own
// configuration package (required through a replace of ../..), so a key
// tracktrace does not know, a value it would reject, or a setting that
// Production refuses fails here rather than at the first rollout.

// podEnvironment resolves a container's env as the kubelet would, taking
// secrets from the example Secrets and config maps from the manifests.
// Values naming a file under a mounted Secret are moved to mounted, where
// mountSecrets put that Secret's files.
func podEnvironment(t *testing.T, objs []object, c corev1.Container, mounted map[string]string) []string {
	t.Helper()
	var env []string
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			v := e.Value
			for mountPath, dir := range mounted {
				if rest, ok := strings.CutPrefix(v, mountPath+"/"); ok {
					v = filepath.Join(dir, rest)
				}
			}
			env = append(env, e.Name+"="+v)
		case e.ValueFrom.SecretKeyRef != nil:
			secret := exampleSecretNamed(objs, e.ValueFrom.SecretKeyRef.Name)
			if secret == nil {
				t.Fatalf("%s: env %s: secret %s is not in %s", c.Name, e.Name, e.ValueFrom.SecretKeyRef.Name, exampleSecret)
			}
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
	pod := find[*appsv1.Deployment](t, objs, appName).Spec.Template.Spec
	cfg, err := config.Load(config.Options{File: file, Environ: podEnvironment(t, objs, c, mountSecrets(t, objs, pod, c))})
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
		checkKafkaSecurity(t, pod, c, cfg)
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

// checkKafkaSecurity asserts the API reaches Kafka over TLS with SASL, as
// a shared production cluster requires: the credentials from a Secret
// (never inline), the brokers' authority from a mounted Secret.
func checkKafkaSecurity(t *testing.T, pod corev1.PodSpec, c corev1.Container, cfg *config.Config) {
	t.Helper()
	sec := cfg.Kafka.Security
	if !sec.TLS.Enabled {
		t.Errorf("%s: Kafka without TLS (Kafka__Security__TLS__Enabled)", c.Name)
	}
	switch sec.SASL.Mechanism {
	case config.SASLAWSMSKIAM:
		return // IRSA: no credentials in the pod spec
	case config.SASLPlain, config.SASLScramSHA256, config.SASLScramSHA512:
	default:
		t.Errorf("%s: Kafka SASL mechanism %q: want SCRAM, PLAIN or AWS_MSK_IAM", c.Name, sec.SASL.Mechanism)
	}
	for _, name := range []string{"Kafka__Security__SASL__Username", "Kafka__Security__SASL__Password"} {
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
		if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s: %s must come from a Secret (secretKeyRef)", c.Name, name)
		}
	}
	if sec.SASL.Password == "" {
		t.Errorf("%s: Kafka SASL without a password", c.Name)
	}
	// The CA file lies in a Secret mounted read-only; that it exists there
	// (a key of the Secret) loading proved, as mountSecrets wrote only those.
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "Kafka__Security__TLS__CAFile" })
	var inSecret bool
	for _, m := range c.VolumeMounts {
		vol := volume(pod, m.Name)
		if i >= 0 && vol != nil && vol.Secret != nil && m.ReadOnly && strings.HasPrefix(c.Env[i].Value, strings.TrimSuffix(m.MountPath, "/")+"/") {
			inSecret = true
		}
	}
	if !inSecret {
		t.Errorf("%s: Kafka__Security__TLS__CAFile must name a file of a Secret mounted read-only", c.Name)
	}
}

// mountSecrets writes, for each Secret volume the container mounts, a file
// per key its example Secret documents, and returns the directory standing
// for each mount path. The example holds placeholders, so the files hold
// certificates and a key made here (kafkatest: a CA for ca.crt, a client
// certificate and key for tls.crt and tls.key): the service's validation, which reads the files its settings
// name, then proves each one lies in a mounted Secret that has it.
func mountSecrets(t *testing.T, objs []object, pod corev1.PodSpec, c corev1.Container) map[string]string {
	t.Helper()
	pki := kafkatest.NewPKI(t)
	mounted := map[string]string{}
	for _, m := range c.VolumeMounts {
		vol := volume(pod, m.Name)
		if vol == nil || vol.Secret == nil {
			continue
		}
		secret := exampleSecretNamed(objs, vol.Secret.SecretName)
		if secret == nil {
			t.Fatalf("%s: volume %s mounts secret %s, which %s does not document", c.Name, m.Name, vol.Secret.SecretName, exampleSecret)
		}
		dir := t.TempDir()
		for key := range secret.StringData {
			from := pki.CAFile
			switch {
			case strings.HasSuffix(key, ".key"):
				from = pki.ClientKeyFile
			case key == "tls.crt":
				from = pki.ClientCertFile
			}
			if err := os.WriteFile(filepath.Join(dir, key), readFile(t, from), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		mounted[strings.TrimSuffix(m.MountPath, "/")] = dir
	}
	return mounted
}
