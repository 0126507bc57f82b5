package check

import (
	"path/filepath"
	"slices"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// TestKustomizeBuild runs `kustomize build ../k8s` in-process and decodes
// its output strictly: what `kubectl apply -k` would send.
func TestKustomizeBuild(t *testing.T) {
	dir, err := filepath.Abs(deployPath("k8s"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := splitDocuments(out)
	if err != nil {
		t.Fatal(err)
	}
	var built []string
	for i, doc := range docs {
		tm, obj, err := decodeObject(doc)
		if err != nil {
			t.Fatalf("kustomize output document %d: %v\n%s", i+1, err, doc)
		}
		o := object{meta: tm, obj: obj}
		built = append(built, tm.Kind+"/"+o.objectMeta().Name)
		if tm.Kind == "Secret" {
			t.Errorf("kustomize build emits Secret %s: secrets are created out of band", o.objectMeta().Name)
		}
		if ns := o.objectMeta().Namespace; tm.Kind != "Namespace" && ns != namespace {
			t.Errorf("%s/%s in namespace %q", tm.Kind, o.objectMeta().Name, ns)
		}
	}
	for _, want := range []string{"Namespace/" + namespace, "ConfigMap/tracktrace-config", "ConfigMap/kafka-config",
		"Deployment/" + appName, "Service/" + appName, "HorizontalPodAutoscaler/" + appName, "PodDisruptionBudget/" + appName} {
		if !slices.Contains(built, want) {
			t.Errorf("kustomize build lacks %s (built %v)", want, built)
		}
	}
}
