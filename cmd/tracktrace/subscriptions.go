package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/tlm/tracktrace/internal/config"
	"github.com/tlm/tracktrace/internal/eventstore"
	"github.com/tlm/tracktrace/internal/projection"
	"github.com/tlm/tracktrace/internal/readmodel"
	"github.com/tlm/tracktrace/internal/subscription"
	"github.com/tlm/tracktrace/internal/subscription/destination"
	"github.com/tlm/tracktrace/internal/telemetry"
)

// subscriptions builds the webhook subscriptions' API and their
// dispatcher, which follows feed (the log) while this replica leads it.
func subscriptions(ctx context.Context, cfg *config.Config, store eventstore.Store, feed projection.Feed, views *readmodel.Store,
	leader projection.Leader, changes func() subscription.Changes, metrics *telemetry.Metrics, log *slog.Logger,
) (*subscription.Service, *subscription.Dispatcher, error) {
	sc := cfg.Subscriptions
	key, err := configuredOrStoredKey(ctx, sc.EncryptionKey, views, "subscription-secrets-key")
	if err != nil {
		return nil, nil, err
	}
	sealer, err := subscription.NewSealer(key)
	if err != nil {
		return nil, nil, err
	}
	policy := destination.Policy{AllowPrivate: sc.AllowPrivateDestinations}
	disp := subscription.NewDispatcher(views, sealer, feed, leader, subscription.Options{
		Client:         policy.Client(time.Duration(sc.RequestTimeout)),
		RequestTimeout: time.Duration(sc.RequestTimeout),
		RetryFor:       time.Duration(sc.RetryFor),
		MaxBackoff:     time.Duration(sc.MaxBackoff),
		Interval:       time.Duration(cfg.ReadModels.RefreshInterval),
		DeliveryLogFor: time.Duration(sc.DeliveryLogRetention),
		UserAgent:      "tracktrace/" + buildVersion(),
		Changes:        changes,
		// EPCIS query subscriptions match on the EPCIS index.
		EPCIS:    views,
		Observer: metrics.Webhooks(),
		Logger:   log,
	})
	svc := subscription.NewService(views, sealer, policy, store, subscription.ServiceOptions{
		SecretGrace: time.Duration(sc.SecretGracePeriod), Notify: disp.Notify,
	})
	return svc, disp, nil
}
