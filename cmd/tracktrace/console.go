package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/console"
	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/httpapi"
	"github.com/tlm/tracktrace/internal/projection"
)

// withConsole serves the operator console at /console beside the API,
// over the same read side, services and live streams the API has.
func withConsole(api http.Handler, cfg *config.Config, deps httpapi.Deps, feed projection.Feed,
	views projection.Checkpoints, kp *kafkaParts, log *slog.Logger) (http.Handler, error) {
	authenticate := console.Anonymous(httpapi.DefaultTenant)
	if cfg.Authentication.Enabled() {
		// Bearer tokens are for API clients; a browser needs a sign-in.
		authenticate = console.NoSignIn
	}
	backlogs := []console.Backlog{
		{Name: "EPCIS mapping", Source: checkpointBacklog{feed, views, epcis.EntitiesCheckpoint}},
		{Name: "alert rules", Source: checkpointBacklog{feed, views, alerting.Checkpoint}},
	}
	if kp != nil {
		backlogs = append(backlogs, console.Backlog{Name: "Kafka relay", Source: kp.relay})
	}
	c, err := console.New(console.Deps{
		ReadModels:    deps.ReadModels,
		Authenticate:  authenticate,
		Tracker:       deps.Tracker,
		Projections:   deps.Projections,
		Backlogs:      backlogs,
		Subscriptions: deps.Subscriptions,
		Sites:         deps.Sites,
		Live:          deps.Live,
		EntityTypes:   deps.EntityTypes,
		Logger:        log,
	}, console.Options{
		Unauthenticated: !cfg.Authentication.Enabled(),
		OnTimeTolerance: time.Duration(cfg.Tracking.OnTimeTolerance),
		ConsistencyWait: time.Duration(cfg.ReadModels.ConsistencyWait),
		RequestTimeout:  time.Duration(cfg.Server.RequestTimeout),
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, c)
	mux.Handle(console.Prefix+"/", c)
	mux.Handle("/", api)
	return mux, nil
}
