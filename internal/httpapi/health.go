package httpapi

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

type checkResult struct {
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	DurationMs float64 `json:"durationMs"`
	// Detail is what a failed check chose to tell the public (see
	// HealthDetailer); other failures say only that they failed.
	Detail string `json:"detail,omitempty"`
}

// HealthDetailer is implemented by a check's error that may be shown in the
// health report (it carries no internals), such as a follower held back by
// a long transaction. Such a failure is not logged by every probe: its
// source logs it, at its own pace.
type HealthDetailer interface {
	HealthDetail() string
}

type healthReport struct {
	Status  string        `json:"status"`
	Version string        `json:"version,omitempty"`
	Checks  []checkResult `json:"checks"`
}

// runChecks runs every check concurrently, each bounded by a short timeout.
// Failures are logged with their cause; the report only says which failed.
func (s *server) runChecks(ctx context.Context) healthReport {
	rep := healthReport{Status: "Healthy", Version: s.Version, Checks: make([]checkResult, len(s.Checks))}
	var wg sync.WaitGroup
	for i, c := range s.Checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			start := time.Now()
			err := c.Check(ctx)
			res := checkResult{Name: c.Name, Status: "Healthy", DurationMs: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				res.Status = "Unhealthy"
				if c.Optional {
					res.Status = "Degraded"
				}
				var d HealthDetailer
				if errors.As(err, &d) {
					res.Detail = d.HealthDetail()
				} else {
					s.log.WarnContext(ctx, "health check failed", "check", c.Name, "error", err)
				}
			}
			rep.Checks[i] = res
		})
	}
	wg.Wait()
	for _, c := range rep.Checks {
		switch {
		case c.Status == "Unhealthy":
			rep.Status = "Unhealthy"
		case c.Status == "Degraded" && rep.Status == "Healthy":
			rep.Status = "Degraded"
		}
	}
	return rep
}

// health is the summary: every check, 200 when all pass, else 503.
func (s *server) health(w http.ResponseWriter, r *http.Request) {
	rep := s.runChecks(r.Context())
	status := http.StatusOK
	if rep.Status == "Unhealthy" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rep)
}

// live answers while the process serves HTTP: it checks no dependency, so
// that an outage of one never makes the orchestrator restart every replica.
func (s *server) live(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, healthReport{Status: "Healthy", Version: s.Version, Checks: []checkResult{}})
}

// ready answers 200 when the dependencies needed to serve are reachable.
func (s *server) ready(w http.ResponseWriter, r *http.Request) { s.health(w, r) }
