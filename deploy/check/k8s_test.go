package check

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	namespace      = "corporate-services"
	appName        = "tracktrace-api"
	seedImage      = "tlm/tracktrace-api:latest"
	configPath     = "/app/config/appsettings.json"
	exampleSecret  = "secret.example.yaml"
	kustomization  = "kustomization.yaml"
	placeholderTag = "CHANGE-ME"
)

// kinds maps apiVersion/kind to the typed object a document must decode into.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                     func() any { return new(appsv1.Deployment) },
	"v1/Service":                             func() any { return new(corev1.Service) },
	"v1/ConfigMap":                           func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                              func() any { return new(corev1.Secret) },
	"v1/Namespace":                           func() any { return new(corev1.Namespace) },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"policy/v1/PodDisruptionBudget":          func() any { return new(policyv1.PodDisruptionBudget) },
	"batch/v1/Job":                           func() any { return new(batchv1.Job) },
}

// object is one decoded Kubernetes document.
type object struct {
	file string
	meta metav1.TypeMeta
	obj  any // one of the types in kinds
}

func (o object) key() string { return o.meta.APIVersion + "/" + o.meta.Kind }

func (o object) objectMeta() *metav1.ObjectMeta {
	return o.obj.(metav1.ObjectMetaAccessor).GetObjectMeta().(*metav1.ObjectMeta)
}

// decodeStrict decodes one YAML document into into, refusing duplicate keys
// (YAMLToJSONStrict), fields the type does not have (json.Decoder's
// DisallowUnknownFields) and fields spelled in another case, which
// encoding/json would accept but the API server rejects (sigs.k8s.io/json,
// the API server's own decoder).
func decodeStrict(doc []byte, into any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the document")
	}
	strict, err := kjson.UnmarshalStrict(j, into, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeObject decodes a document into the type its apiVersion and kind name.
func decodeObject(doc []byte) (metav1.TypeMeta, any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return tm, nil, err
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return tm, nil, fmt.Errorf("unexpected apiVersion/kind %s/%s", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	return tm, obj, decodeStrict(doc, obj)
}

// splitDocuments returns the non-empty YAML documents of a file.
func splitDocuments(data []byte) ([][]byte, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(j)); s != "null" && s != "" {
			docs = append(docs, doc)
		}
	}
}

// manifests decodes every Kubernetes document under ../k8s except the
// kustomization, failing the test on the first one that does not decode.
func manifests(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob(deployPath("k8s", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no manifests in ../k8s")
	}
	var out []object
	for _, f := range files {
		if filepath.Base(f) == kustomization {
			continue
		}
		docs, err := splitDocuments(readFile(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(docs) == 0 {
			t.Fatalf("%s: no document", f)
		}
		for i, doc := range docs {
			tm, obj, err := decodeObject(doc)
			if err != nil {
				t.Fatalf("%s (document %d): %v", f, i+1, err)
			}
			out = append(out, object{file: filepath.Base(f), meta: tm, obj: obj})
		}
	}
	return out
}

// find returns the only object of a kind and name.
func find[T any](t *testing.T, objs []object, name string) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if x, ok := o.obj.(T); ok && o.objectMeta().Name == name {
			found = append(found, x)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want one %T named %q, found %d", zero, name, len(found))
	}
	return found[0]
}

func TestStrictDecodingRejectsMistakes(t *testing.T) {
	// The decoder must catch what a typo in a manifest looks like, or the
	// other tests prove nothing.
	bad := map[string]string{
		"unknown field": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicaz: 3}\n",
		"wrong case":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {Replicas: 3}\n",
		"duplicate key": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ClusterIP, type: NodePort}\n",
		"wrong type":    "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: eighty}]}\n",
		"unknown kind":  "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"bad resources": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {template: {spec: {containers: [{name: a, resources: {limits: {memory: lots}}}]}}}\n",
	}
	for name, doc := range bad {
		if _, _, err := decodeObject([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error:\n%s", name, doc)
		}
	}
	good := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 3}\n"
	if _, _, err := decodeObject([]byte(good)); err != nil {
		t.Errorf("a valid document was rejected: %v", err)
	}
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs := manifests(t)
	seen := map[string]int{}
	for _, o := range objs {
		seen[o.key()]++
		m := o.objectMeta()
		if m.Name == "" {
			t.Errorf("%s: %s without a name", o.file, o.meta.Kind)
		}
		if o.meta.Kind == "Namespace" {
			if m.Name != namespace {
				t.Errorf("%s: namespace %q, want %q", o.file, m.Name, namespace)
			}
			continue
		}
		if m.Namespace != namespace {
			t.Errorf("%s: %s %s in namespace %q, want %q", o.file, o.meta.Kind, m.Name, m.Namespace, namespace)
		}
	}
	for _, k := range []string{"apps/v1/Deployment", "v1/Service", "v1/ConfigMap", "v1/Namespace",
		"autoscaling/v2/HorizontalPodAutoscaler", "policy/v1/PodDisruptionBudget", "v1/Secret"} {
		if seen[k] == 0 {
			t.Errorf("no %s manifest", k)
		}
	}
}

func TestKustomization(t *testing.T) {
	var k map[string]any
	if err := yaml.UnmarshalStrict(readFile(t, deployPath("k8s", kustomization)), &k); err != nil {
		t.Fatal(err)
	}
	if k["apiVersion"] != "kustomize.config.k8s.io/v1beta1" || k["kind"] != "Kustomization" {
		t.Errorf("apiVersion/kind = %v/%v", k["apiVersion"], k["kind"])
	}
	if k["namespace"] != namespace {
		t.Errorf("namespace = %v, want %s", k["namespace"], namespace)
	}
	known := []string{"apiVersion", "kind", "namespace", "resources", "images", "labels", "commonAnnotations",
		"patches", "configMapGenerator", "secretGenerator", "generatorOptions", "components", "replicas"}
	for key := range k {
		if !slices.Contains(known, key) {
			t.Errorf("unexpected kustomization field %q", key)
		}
	}
	raw, ok := k["resources"].([]any)
	if !ok || len(raw) == 0 {
		t.Fatalf("resources = %v", k["resources"])
	}
	var listed []string
	for _, r := range raw {
		name, ok := r.(string)
		if !ok {
			t.Fatalf("resource %v is not a path", r)
		}
		if _, err := os.Stat(deployPath("k8s", name)); err != nil {
			t.Errorf("listed resource %s: %v", name, err)
		}
		if slices.Contains(listed, name) {
			t.Errorf("resource %s listed twice", name)
		}
		listed = append(listed, name)
	}
	if slices.Contains(listed, exampleSecret) {
		t.Errorf("%s is listed: its placeholder values would overwrite the real Secret", exampleSecret)
	}
	// Every manifest but the example Secret is applied.
	files, _ := filepath.Glob(deployPath("k8s", "*.yaml"))
	for _, f := range files {
		base := filepath.Base(f)
		if base != kustomization && base != exampleSecret && !slices.Contains(listed, base) {
			t.Errorf("%s is not listed in %s", base, kustomization)
		}
	}
}

func TestDeployment(t *testing.T) {
	objs := manifests(t)
	d := find[*appsv1.Deployment](t, objs, appName)
	if d.Namespace != namespace {
		t.Errorf("namespace %q", d.Namespace)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas = %v, want 3", ptrString(d.Spec.Replicas))
	}
	if got := d.Spec.Selector.MatchLabels["app"]; got != appName {
		t.Errorf("selector app=%q, want %s", got, appName)
	}
	podLabels := d.Spec.Template.Labels
	for k, v := range d.Spec.Selector.MatchLabels {
		if podLabels[k] != v {
			t.Errorf("selector %s=%s does not match the pod template's labels %v", k, v, podLabels)
		}
	}
	if s := d.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update must keep every replica serving (maxUnavailable 0): %+v", s)
	}

	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Name != "api" || c.Image != seedImage {
		t.Errorf("container %s image %s, want api image %s", c.Name, c.Image, seedImage)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("ports = %+v, want 8080", c.Ports)
	}
	if want := []string{"serve", "--config", configPath}; !slices.Equal(c.Args, want) {
		t.Errorf("args = %q, want %q", c.Args, want)
	}
	if len(c.Command) != 0 {
		t.Errorf("command %q overrides the image's ENTRYPOINT", c.Command)
	}

	// The seed's environment.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		env[e.Name] = e
	}
	if e := env["ASPNETCORE_ENVIRONMENT"]; e.Value != "Production" {
		t.Errorf("ASPNETCORE_ENVIRONMENT = %q, want Production", e.Value)
	}
	if e := env["ConnectionStrings__EventStore"]; e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		e.ValueFrom.SecretKeyRef.Name != "db-secrets" || e.ValueFrom.SecretKeyRef.Key != "eventstore-connection" {
		t.Errorf("ConnectionStrings__EventStore must come from secret db-secrets/eventstore-connection: %+v", e)
	}
	if e := env["Kafka__BootstrapServers"]; e.ValueFrom == nil || e.ValueFrom.ConfigMapKeyRef == nil ||
		e.ValueFrom.ConfigMapKeyRef.Name != "kafka-config" || e.ValueFrom.ConfigMapKeyRef.Key != "bootstrap-servers" {
		t.Errorf("Kafka__BootstrapServers must come from configmap kafka-config/bootstrap-servers: %+v", e)
	}
	for _, e := range c.Env {
		if e.Value != "" && (strings.Contains(strings.ToLower(e.Value), "password=") || strings.Contains(e.Value, "://") && strings.Contains(e.Value, "@")) {
			t.Errorf("env %s carries a credential inline; take it from the Secret", e.Name)
		}
	}

	// The seed's resources.
	wantRes := map[string]map[corev1.ResourceName]string{
		"requests": {corev1.ResourceMemory: "256Mi", corev1.ResourceCPU: "250m"},
		"limits":   {corev1.ResourceMemory: "512Mi", corev1.ResourceCPU: "500m"},
	}
	for kind, want := range wantRes {
		got := c.Resources.Requests
		if kind == "limits" {
			got = c.Resources.Limits
		}
		for name, q := range want {
			g, ok := got[name]
			if !ok || g.Cmp(resource.MustParse(q)) != 0 {
				t.Errorf("resources.%s.%s = %v, want %s", kind, name, g.String(), q)
			}
		}
	}

	// The seed's probes.
	checkProbe(t, "liveness", c.LivenessProbe, "/health/live", 30, 10)
	checkProbe(t, "readiness", c.ReadinessProbe, "/health/ready", 5, 5)

	// Hardening, for the server and the init containers alike.
	if pod.SecurityContext == nil || pod.SecurityContext.SeccompProfile == nil ||
		pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile must be RuntimeDefault")
	}
	for _, ctr := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		checkHardened(t, ctr, pod.SecurityContext)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the API needs no Kubernetes credentials: automountServiceAccountToken: false")
	}

	// Migrations before the server: an init container running `migrate`.
	var migrate *corev1.Container
	for i := range pod.InitContainers {
		if len(pod.InitContainers[i].Args) > 0 && pod.InitContainers[i].Args[0] == "migrate" {
			migrate = &pod.InitContainers[i]
		}
	}
	if migrate == nil {
		if !hasMigrateJob(objs) {
			t.Error("no init container or Job runs `tracktrace migrate`")
		}
	} else {
		if migrate.Image != c.Image {
			t.Errorf("migrate runs image %s, the server %s", migrate.Image, c.Image)
		}
		if !slices.Contains(migrate.Args, configPath) {
			t.Errorf("migrate args %q do not name %s", migrate.Args, configPath)
		}
	}

	// The configuration directory, mounted whole so updates reach the pod.
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.MountPath == filepath.Dir(configPath) {
			mounted = true
			if m.SubPath != "" {
				t.Error("the config is mounted with subPath: ConfigMap updates would never reach the pod")
			}
			vol := volume(pod, m.Name)
			if vol == nil || vol.ConfigMap == nil || vol.ConfigMap.Name != "tracktrace-config" {
				t.Errorf("%s is not the tracktrace-config ConfigMap: %+v", m.MountPath, vol)
			}
		}
	}
	if !mounted {
		t.Errorf("nothing mounted at %s", filepath.Dir(configPath))
	}

	// Spread across zones.
	var zones bool
	for _, tsc := range pod.TopologySpreadConstraints {
		if tsc.TopologyKey == "topology.kubernetes.io/zone" && tsc.LabelSelector != nil &&
			tsc.LabelSelector.MatchLabels["app"] == appName {
			zones = true
		}
	}
	if !zones {
		t.Error("no topologySpreadConstraint across topology.kubernetes.io/zone for app=" + appName)
	}

	// preStop sleep for endpoint propagation.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil ||
		c.Lifecycle.PreStop.Sleep.Seconds < 5 {
		t.Error("want a preStop sleep of at least 5s (the image has no shell: lifecycle.preStop.sleep)")
	}

	// Prometheus scrape annotations.
	a := d.Spec.Template.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != "8080" || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("prometheus annotations = %v", a)
	}

	// Every reference resolves: Secrets to the example, ConfigMaps to manifests.
	for _, ctr := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		for _, e := range ctr.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil && (r.Optional == nil || !*r.Optional) {
				if secret := exampleSecretNamed(objs, r.Name); secret == nil || secret.StringData[r.Key] == "" {
					t.Errorf("%s: env %s needs secret %s key %s, which %s does not document", ctr.Name, e.Name, r.Name, r.Key, exampleSecret)
				}
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				cm := find[*corev1.ConfigMap](t, objs, r.Name)
				if _, ok := cm.Data[r.Key]; !ok {
					t.Errorf("%s: env %s needs configmap %s key %s", ctr.Name, e.Name, r.Name, r.Key)
				}
			}
		}
	}
}

// exampleSecretNamed returns the Secret of that name in the example file,
// or nil.
func exampleSecretNamed(objs []object, name string) *corev1.Secret {
	for _, o := range objs {
		if s, ok := o.obj.(*corev1.Secret); ok && o.file == exampleSecret && s.Name == name {
			return s
		}
	}
	return nil
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func hasMigrateJob(objs []object) bool {
	for _, o := range objs {
		if j, ok := o.obj.(*batchv1.Job); ok {
			for _, c := range j.Spec.Template.Spec.Containers {
				if slices.Contains(c.Args, "migrate") {
					return true
				}
			}
		}
	}
	return false
}

func volume(pod corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

func checkProbe(t *testing.T, name string, p *corev1.Probe, path string, delay, period int32) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s probe: want an httpGet probe on %s", name, path)
		return
	}
	if p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromInt32(8080) {
		t.Errorf("%s probe: GET %s on port %s, want %s on 8080", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
	}
	if p.InitialDelaySeconds != delay || p.PeriodSeconds != period {
		t.Errorf("%s probe: initialDelaySeconds %d periodSeconds %d, want the seed's %d and %d",
			name, p.InitialDelaySeconds, p.PeriodSeconds, delay, period)
	}
}

// checkHardened asserts a container runs as non-root on a read-only root
// filesystem without capabilities, privilege escalation or an unconfined
// seccomp profile, taking the pod-level settings into account.
func checkHardened(t *testing.T, c corev1.Container, pod *corev1.PodSecurityContext) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("%s: no securityContext", c.Name)
		return
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && pod != nil {
		nonRoot = pod.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s: runAsNonRoot is not true", c.Name)
	}
	uid := sc.RunAsUser
	if uid == nil && pod != nil {
		uid = pod.RunAsUser
	}
	if uid == nil || *uid == 0 {
		t.Errorf("%s: want a numeric non-zero runAsUser", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", c.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", c.Name)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities must drop ALL and add none: %+v", c.Name, sc.Capabilities)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod != nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile is not RuntimeDefault", c.Name)
	}
}

func TestService(t *testing.T) {
	objs := manifests(t)
	d := find[*appsv1.Deployment](t, objs, appName)
	s := find[*corev1.Service](t, objs, appName)
	if s.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("type %s, want ClusterIP", s.Spec.Type)
	}
	for k, v := range s.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s selects no pod of the Deployment", k, v)
		}
	}
	if len(s.Spec.Selector) == 0 {
		t.Error("no selector")
	}
	if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 80 {
		t.Fatalf("ports = %+v, want 80", s.Spec.Ports)
	}
	// targetPort resolves, by name or number, to the container's 8080.
	tp := s.Spec.Ports[0].TargetPort
	var resolved int32
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		if (tp.Type == intstr.String && p.Name == tp.StrVal) || (tp.Type == intstr.Int && p.ContainerPort == tp.IntVal) {
			resolved = p.ContainerPort
		}
	}
	if resolved != 8080 {
		t.Errorf("targetPort %s does not resolve to container port 8080", tp.String())
	}
}

func TestHorizontalPodAutoscaler(t *testing.T) {
	objs := manifests(t)
	h := find[*autoscalingv2.HorizontalPodAutoscaler](t, objs, appName)
	ref := h.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != appName {
		t.Errorf("scaleTargetRef = %+v", ref)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 3 || h.Spec.MaxReplicas != 10 {
		t.Errorf("replicas %v..%d, want 3..10", h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	var cpu bool
	for _, m := range h.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType &&
			m.Resource.Target.AverageUtilization != nil && *m.Resource.Target.AverageUtilization == 70 {
			cpu = true
		}
	}
	if !cpu {
		t.Errorf("no CPU utilization target of 70%%: %+v", h.Spec.Metrics)
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	objs := manifests(t)
	d := find[*appsv1.Deployment](t, objs, appName)
	p := find[*policyv1.PodDisruptionBudget](t, objs, appName)
	if p.Spec.MinAvailable == nil || *p.Spec.MinAvailable != intstr.FromInt32(2) {
		t.Errorf("minAvailable = %v, want 2", p.Spec.MinAvailable)
	}
	if p.Spec.MinAvailable != nil && int32(p.Spec.MinAvailable.IntValue()) >= *d.Spec.Replicas {
		t.Error("minAvailable must stay below the replica count, or no node can ever be drained")
	}
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("selector %v does not select the Deployment's pods", sel)
	}
}

func TestExampleSecretHoldsOnlyPlaceholders(t *testing.T) {
	objs := manifests(t)
	for _, o := range objs {
		s, ok := o.obj.(*corev1.Secret)
		if !ok {
			continue
		}
		if o.file != exampleSecret {
			t.Errorf("%s: Secret %s outside %s; secret values never belong in the repository", o.file, s.Name, exampleSecret)
		}
		if len(s.Data) > 0 {
			t.Errorf("%s: use stringData with visible placeholders, not data", o.file)
		}
		for k, v := range s.StringData {
			if !strings.Contains(v, placeholderTag) {
				t.Errorf("%s: %s holds no %s placeholder; is it a real value?", o.file, k, placeholderTag)
			}
			// The credential itself is the placeholder, not just the host.
			if u, err := url.Parse(v); err == nil && u.User != nil {
				if pw, _ := u.User.Password(); pw != placeholderTag {
					t.Errorf("%s: %s: the password must be the %s placeholder", o.file, k, placeholderTag)
				}
			}
		}
	}
}

func TestConfigMapAppSettings(t *testing.T) {
	objs := manifests(t)
	cm := find[*corev1.ConfigMap](t, objs, "tracktrace-config")
	raw, ok := cm.Data["appsettings.json"]
	if !ok {
		t.Fatal("no appsettings.json key")
	}
	got := strictJSON(t, []byte(raw))
	seed := strictJSON(t, readFile(t, "testdata/seed-appsettings.json"))

	// Every seed setting is there with the seed's value, except those the
	// cluster changes on purpose (see configmap.yaml's comment).
	adapted := map[string]string{
		"EventStore.ConnectionString": "from db-secrets (ConnectionStrings__EventStore)",
		"ReadModels.ConnectionString": "from db-secrets (ConnectionStrings__ReadModels), else the event store's",
		"Monitoring.Tracing.Endpoint": "OTLP/HTTP instead of Jaeger's Thrift endpoint",
	}
	for path, want := range leaves(seed, "") {
		if _, ok := adapted[path]; ok {
			continue
		}
		g, ok := leaves(got, "")[path]
		if !ok {
			t.Errorf("%s: missing (seed: %v)", path, want)
		} else if fmt.Sprint(g) != fmt.Sprint(want) {
			t.Errorf("%s = %v, seed says %v", path, g, want)
		}
	}
	for path, v := range leaves(got, "") {
		s, _ := v.(string)
		low := strings.ToLower(s)
		if strings.Contains(low, "password=") || strings.Contains(low, "pwd=") ||
			(strings.Contains(s, "://") && strings.Contains(s, "@")) {
			t.Errorf("%s holds a credential; it belongs in the Secret", path)
		}
	}
}

// strictJSON parses a settings file as strict JSON (no comments, no trailing
// commas, no duplicate keys) into nested maps.
func strictJSON(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	strict, err := kjson.UnmarshalStrict(data, &m, kjson.DisallowDuplicateFields)
	if err != nil {
		t.Fatalf("appsettings.json: %v", err)
	}
	if len(strict) > 0 {
		t.Fatalf("appsettings.json: %v", errors.Join(strict...))
	}
	return m
}

// leaves flattens nested maps into dotted paths.
func leaves(m map[string]any, prefix string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			for kk, vv := range leaves(sub, p) {
				out[kk] = vv
			}
			continue
		}
		out[p] = v
	}
	return out
}
