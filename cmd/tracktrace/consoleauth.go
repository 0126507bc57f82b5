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
	key, err := configuredOrStoredKey(ctx, c.SessionKey, views, "console-session-key")
	if err != nil {
		return nil, err
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

// configuredOrStoredKey returns the 32-byte key configured (base64, as
// the configuration validated it), else the one kept under name in the
// read-model database, made there by the first replica to ask.
func configuredOrStoredKey(ctx context.Context, configured string, views *readmodel.Store, name string) ([]byte, error) {
	if configured != "" {
		return base64.StdEncoding.DecodeString(configured)
	}
	return views.Secret(ctx, name)
}
