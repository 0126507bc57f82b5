package tracking_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops what it started: no goroutine may outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
