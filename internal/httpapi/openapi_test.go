package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/tracking"
)

// noEraser is an Eraser that finds nothing.
type noEraser struct{}

func (noEraser) Erase(context.Context, string, string) (tracking.ErasureResult, error) {
	return tracking.ErasureResult{}, tracking.ErrNotFound
}

// The routes the server registers (with every optional part configured) are
// exactly the operations of the OpenAPI document, method and path.
func TestRoutesMatchOpenAPI(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "post", "put", "patch", "delete", "options":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	s := &server{Deps: Deps{Tracker: &tenantRecorder{}, ReadModels: noReadModels{}, Projections: &rebuildRecorder{},
		Eraser: noEraser{}, Metrics: http.NotFoundHandler(), EPCIS: &EPCIS{}, Subscriptions: &subscription.Service{},
		Sites: &alerting.SiteService{}, Rules: &alerting.RuleService{},
		Live: &Live{}}}
	s.routes(http.NewServeMux())
	slices.Sort(documented)
	served := slices.Sorted(slices.Values(s.patterns))
	if !slices.Equal(served, documented) {
		t.Errorf("served routes and the OpenAPI document differ:\nserved     %q\ndocumented %q", served, documented)
	}
}
