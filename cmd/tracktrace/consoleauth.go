package main

import (
	"context"
	"encoding/base64"
	"log/slog"
	"time"

	"github.com/tlm/tracktrace/internal/auth"
	"github.com/tlm/tracktrace/internal/config"
	consoleauth "github.com/tlm/tracktrace/internal/console/auth"
	"github.com/tlm/tracktrace/internal/readmodel"
)

// consoleAuth builds the console's authentication: v is the API's verifier
// (nil without an authority, the embedded mode); the session key is
// Console.SessionKey, else one made once and kept in the read-model
// database, so that every replica on it shares the sessions.
func consoleAuth(ctx context.Context, cfg *config.Config, views *readmodel.Store, v *auth.Verifier, log *slog.Logger) (*consoleauth.Auth, error) {
	c := cfg.Console
	var key []byte
	if c.SessionKey != "" {
		key, _ = base64.StdEncoding.DecodeString(c.SessionKey) // validated with the configuration
	} else {
		var err error
		if key, err = views.Secret(ctx, "console-session-key"); err != nil {
			return nil, err
		}
	}
	o := consoleauth.Options{
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scopes: c.Scopes, PublicURL: c.PublicURL,
		SessionKey: key, SessionLifetime: time.Duration(c.SessionLifetime), Logger: log,
	}
	if v != nil { // a nil *auth.Verifier in the interface would not be nil
		o.Verifier = v
	}
	return consoleauth.New(o)
}
