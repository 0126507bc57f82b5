package config

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// The feature flags tracktrace knows, as the Features section spells them.
// Each can be turned off at run time; see DefaultFeatures for what is on
// when nothing says otherwise.
const (
	// FeatureKafkaIngest: the ingest consumer records what arrives on
	// Kafka.Topics.Ingest (when that topic is configured). Off, it stops
	// fetching; nothing is committed, so the messages wait on the topic.
	FeatureKafkaIngest = "KafkaIngest"
	// FeatureIntegrationEvents: the relay publishes integration events to
	// Kafka.Topics.IntegrationEvents. Off, domain events are still
	// published, but the integration events they would cause are not,
	// then or later.
	FeatureIntegrationEvents = "IntegrationEvents"
	// FeatureRateLimiting: Server.RateLimit applies (when configured).
	FeatureRateLimiting = "RateLimiting"
)

// DefaultFeatures returns every known flag with its default: all on.
func DefaultFeatures() map[string]bool {
	return map[string]bool{FeatureKafkaIngest: true, FeatureIntegrationEvents: true, FeatureRateLimiting: true}
}

// resolveFeatures returns the known flags, the values in set (names
// matched case-insensitively) replacing their defaults, and a warning for
// each name in set that is no known flag.
func resolveFeatures(set map[string]bool) (map[string]bool, []string) {
	flags := DefaultFeatures()
	known := slices.Sorted(maps.Keys(flags))
	var warnings []string
	for _, name := range slices.Sorted(maps.Keys(set)) {
		i := slices.IndexFunc(known, func(k string) bool { return strings.EqualFold(k, name) })
		if i < 0 {
			warnings = append(warnings, fmt.Sprintf("unknown feature flag Features.%s ignored (known: %s)", name, strings.Join(known, ", ")))
			continue
		}
		flags[known[i]] = set[name]
	}
	return flags, warnings
}

// Features holds the feature flags for concurrent readers while
// WatchFeatures replaces them. Flag names are case-insensitive. The zero
// value has every flag off.
type Features struct {
	flags atomic.Pointer[featureSet]
}

type featureSet struct {
	spelled map[string]bool // as given to Set
	lower   map[string]bool // by lower-cased name
}

// NewFeatures returns a holder of flags, typically Config.Features.
func NewFeatures(flags map[string]bool) *Features {
	f := &Features{}
	f.Set(flags)
	return f
}

// Enabled reports whether the named flag is on; unknown flags are off.
func (f *Features) Enabled(name string) bool { return f.enabled(strings.ToLower(name)) }

func (f *Features) enabled(lower string) bool {
	s := f.flags.Load()
	return s != nil && s.lower[lower]
}

// Func returns Enabled(name) as a function, for consumers that take a
// func() bool; it is asked per request, so the name is lowered once here.
func (f *Features) Func(name string) func() bool {
	lower := strings.ToLower(name)
	return func() bool { return f.enabled(lower) }
}

// Set replaces every flag.
func (f *Features) Set(flags map[string]bool) {
	s := &featureSet{spelled: maps.Clone(flags), lower: make(map[string]bool, len(flags))}
	if s.spelled == nil {
		s.spelled = map[string]bool{}
	}
	for k, v := range flags {
		s.lower[strings.ToLower(k)] = v
	}
	f.flags.Store(s)
}

// All returns a copy of the flags, spelled as they were set.
func (f *Features) All() map[string]bool {
	if s := f.flags.Load(); s != nil {
		return maps.Clone(s.spelled)
	}
	return map[string]bool{}
}

// DefaultWatchInterval is how often WatchFeatures looks at the files when
// given no interval.
const DefaultWatchInterval = 5 * time.Second

// WatchFeatures keeps f up to date with the Features section of the
// configuration that opts describes, until ctx is done; run it in its own
// goroutine. Every interval (DefaultWatchInterval if not positive) it
// checks whether the settings files or secret files changed, by content (a
// Kubernetes ConfigMap update swaps a symlink, which modification times
// may not show), and if so re-reads the Features section from every
// source, so environment variables and overrides still win. Nothing else
// is reloaded: other settings need a restart. Unknown flag names are
// logged as warnings and ignored. When the files cannot be read or parsed,
// or a flag is not a boolean, it logs a warning and keeps the flags it has.
func WatchFeatures(ctx context.Context, opts Options, interval time.Duration, logger *slog.Logger, f *Features) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last [sha256.Size]byte
	// The first pass catches a change made since Load; its warnings were
	// reported by Load already.
	for first := true; ; first = false {
		if sum := fingerprint(opts); sum != last {
			last = sum
			flags, warnings, err := loadFeatures(opts)
			if err != nil {
				logger.Warn("config: settings changed but cannot be used; keeping the feature flags", "err", err)
			} else {
				for _, w := range warnings {
					if !first {
						logger.Warn("config: " + w)
					}
				}
				if !maps.Equal(flags, f.All()) {
					f.Set(flags)
					logger.Info("config: feature flags reloaded", "features", flags)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// loadFeatures reads only the Features section.
func loadFeatures(opts Options) (map[string]bool, []string, error) {
	src, err := readSources(opts)
	if err != nil {
		return nil, nil, err
	}
	var set map[string]bool
	b := newBinder(src.tree, src.env)
	b.bind(reflect.ValueOf(&set).Elem(), []string{"Features"})
	if len(b.problems) > 0 {
		return nil, nil, &ValidationError{Problems: b.problems}
	}
	flags, warnings := resolveFeatures(set)
	return flags, warnings, nil
}
