package config

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"maps"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
)

// Features holds the feature flags for concurrent readers while
// WatchFeatures replaces them. Flag names are case-insensitive. The zero
// value has every flag off.
type Features struct {
	flags atomic.Pointer[map[string]bool]
}

// NewFeatures returns a holder of flags, typically Config.Features.
func NewFeatures(flags map[string]bool) *Features {
	f := &Features{}
	f.Set(flags)
	return f
}

// Enabled reports whether the named flag is on; unknown flags are off.
func (f *Features) Enabled(name string) bool {
	m := f.flags.Load()
	return m != nil && (*m)[strings.ToLower(name)]
}

// Set replaces every flag.
func (f *Features) Set(flags map[string]bool) {
	m := make(map[string]bool, len(flags))
	for k, v := range flags {
		m[strings.ToLower(k)] = v
	}
	f.flags.Store(&m)
}

// All returns a copy of the flags, their names lower-cased.
func (f *Features) All() map[string]bool {
	if m := f.flags.Load(); m != nil {
		return maps.Clone(*m)
	}
	return map[string]bool{}
}

// WatchFeatures keeps f up to date with the Features section of the
// configuration that opts describes, until ctx is done; run it in its own
// goroutine. Every interval (10s if not positive) it checks whether the settings files or secret
// files changed, by content (a Kubernetes ConfigMap update swaps a symlink,
// which modification times may not show), and if so re-reads the Features
// section from every source, so environment variables and overrides still
// win. Nothing else is reloaded: other settings need a restart. When the
// files cannot be read or parsed, or a flag is not a boolean, it logs a
// warning and keeps the flags it has.
func WatchFeatures(ctx context.Context, opts Options, interval time.Duration, logger *slog.Logger, f *Features) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = 10 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last [sha256.Size]byte
	for {
		if sum := fingerprint(opts); sum != last {
			last = sum
			flags, err := loadFeatures(opts)
			switch {
			case err != nil:
				logger.Warn("config: settings changed but cannot be used; keeping the feature flags", "err", err)
			case !maps.Equal(flags, f.All()):
				f.Set(flags)
				logger.Info("config: feature flags reloaded", "features", flags)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// loadFeatures reads only the Features section, names lower-cased.
func loadFeatures(opts Options) (map[string]bool, error) {
	src, err := readSources(opts)
	if err != nil {
		return nil, err
	}
	var flags map[string]bool
	b := newBinder(src.tree, src.env)
	b.bind(reflect.ValueOf(&flags).Elem(), []string{"Features"})
	if len(b.problems) > 0 {
		return nil, &ValidationError{Problems: b.problems}
	}
	lower := make(map[string]bool, len(flags))
	for k, v := range flags {
		lower[strings.ToLower(k)] = v
	}
	return lower, nil
}
