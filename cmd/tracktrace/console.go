package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tlm/tracktrace/internal/alerting"
	"github.com/tlm/tracktrace/internal/auth"
	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/console"
	consoleauth "github.com/tlm/tracktrace/internal/console/auth"
	"github.com/tlm/tracktrace/internal/epcis"
	"github.com/tlm/tracktrace/internal/httpapi"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/tracking"
)

// withConsole serves the operator console at /console beside the API,
// over the same read side, services and live streams the API has.
//
// Who is asking is the console's sign-in's to say (consoleAuth): with an
// authority, an OIDC session; without one, the API's anonymous caller
// (X-Tenant-ID, else the default tenant), and a banner saying so.
func withConsole(ctx context.Context, api http.Handler, cfg *config.Config, deps httpapi.Deps, feed projection.Feed,
	views *readmodel.Store, verifier *auth.Verifier, kp *kafkaParts, log *slog.Logger) (http.Handler, error) {
	signIn, err := consoleAuth(ctx, cfg, views, verifier, log)
	if err != nil {
		return nil, err
	}
	authenticate := func(w http.ResponseWriter, r *http.Request) (tracking.Principal, bool) {
		p, ok := consoleauth.Principal(r)
		if !ok { // not behind the sign-in's middleware: nobody
			return console.NoSignIn(w, r)
		}
		return p, true
	}
	if signIn.Embedded() {
		// As the API's callers in this mode: X-Tenant-ID, else the default
		// tenant.
		authenticate = console.Anonymous(httpapi.DefaultTenant)
	}
	opts := console.Options{
		Unauthenticated: signIn.Embedded(),
		OnTimeTolerance: time.Duration(cfg.Tracking.OnTimeTolerance),
		ConsistencyWait: time.Duration(cfg.ReadModels.ConsistencyWait),
		RequestTimeout:  time.Duration(cfg.Server.RequestTimeout),
		CSRFField: func(r *http.Request) (string, string) {
			return consoleauth.CSRFField, consoleauth.CSRFToken(r)
		},
	}
	if !signIn.Embedded() {
		opts.SignOut = console.Prefix + "/logout"
	}
	if o := signIn.SignOutOrigin(); o != "" {
		opts.FormActionOrigins = []string{o}
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
	}, opts)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	signIn.Routes(mux)
	mux.Handle(console.Prefix, signIn.Middleware(c))
	mux.Handle(console.Prefix+"/", signIn.Middleware(c))
	mux.Handle("/", api)
	return mux, nil
}
