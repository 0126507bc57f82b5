package check

import (
	"os"
	"path/filepath"
	"testing"
)

// deployDir is deploy/, the parent of this package's directory: tests run
// with the package directory as their working directory.
const deployDir = ".."

// repoRoot is the service's repository root, the Docker build context.
var repoRoot = filepath.Join(deployDir, "..")

func deployPath(elem ...string) string {
	return filepath.Join(append([]string{deployDir}, elem...)...)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
