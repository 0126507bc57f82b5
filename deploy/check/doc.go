// Package check holds the tests that prove tracktrace's deployment files
// (../Dockerfile, ../k8s, ../terraform, ../compose.yaml) are well-formed and
// say what the seed design asks for. It is a module of its own, so the
// parsers it needs (Kubernetes API types, kustomize, HCL, compose-go,
// BuildKit's Dockerfile parser) stay out of the service's dependency graph.
//
//	cd deploy/check && go test ./...
package check
