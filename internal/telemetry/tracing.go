package telemetry

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tlm/tracktrace/internal/eventstore"
)

// TracingOptions configure OpenTelemetry tracing (Monitoring.Tracing).
type TracingOptions struct {
	Enabled bool
	// Endpoint is the OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces.
	Endpoint     string
	SamplingRate float64
	Service      string
	Version      string
}

// NewTracerProvider returns the process's tracer provider (a no-op one when
// tracing is off) and its shutdown, which flushes pending spans. Sampling is
// parent-based: a request that arrives sampled stays sampled, a new trace is
// sampled at SamplingRate.
func NewTracerProvider(ctx context.Context, o TracingOptions) (trace.TracerProvider, func(context.Context) error, error) {
	if !o.Enabled {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(o.Endpoint))
	if err != nil {
		return nil, nil, err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.SamplingRate))),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(o.Service), semconv.ServiceVersion(o.Version))),
	)
	return tp, tp.Shutdown, nil
}

// TraceHTTP starts a server span per request, continuing a W3C traceparent
// the caller sent; the span is named by the ServeMux route once routed.
func TraceHTTP(tp trace.TracerProvider) func(http.Handler) http.Handler {
	tracer := tp.Tracer("tracktrace/http")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method)))
			defer span.End()
			rec := &statusRecorder{ResponseWriter: w}
			// The ServeMux records the route on the request it is given.
			r = r.WithContext(ctx)
			next.ServeHTTP(rec, r)
			if r.Pattern != "" {
				span.SetName(r.Pattern)
				span.SetAttributes(semconv.HTTPRoute(r.Pattern))
			}
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			span.SetAttributes(semconv.HTTPResponseStatusCode(rec.status))
			if rec.status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(rec.status))
			}
		})
	}
}

// TraceStore decorates an event store with a span per append.
func TraceStore(s eventstore.Store, tp trace.TracerProvider) eventstore.Store {
	return &tracedStore{Store: s, tracer: tp.Tracer("tracktrace/eventstore")}
}

type tracedStore struct {
	eventstore.Store
	tracer trace.Tracer
}

func (s *tracedStore) Append(ctx context.Context, r eventstore.AppendRequest) (eventstore.AppendResult, error) {
	ctx, span := s.tracer.Start(ctx, "eventstore.append", trace.WithAttributes(
		attribute.String("tracktrace.tenant", r.Tenant), attribute.String("tracktrace.entity_id", r.StreamID),
		attribute.Int("tracktrace.events", len(r.Events))))
	defer span.End()
	res, err := s.Store.Append(ctx, r)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "append failed")
	} else {
		span.SetAttributes(attribute.Int64("tracktrace.version", res.Version), attribute.Bool("tracktrace.replayed", res.Replayed))
	}
	return res, err
}

// AppendAll traces the whole call as one span.
func (s *tracedStore) AppendAll(ctx context.Context, reqs []eventstore.AppendRequest) []eventstore.Outcome {
	ctx, span := s.tracer.Start(ctx, "eventstore.append_all", trace.WithAttributes(attribute.Int("tracktrace.appends", len(reqs))))
	defer span.End()
	out := s.Store.AppendAll(ctx, reqs)
	failed := 0
	for _, o := range out {
		if o.Err != nil {
			failed++
		}
	}
	span.SetAttributes(attribute.Int("tracktrace.failed", failed))
	return out
}

// LogHandler adds the trace and span ids of the record's context to every
// log record, so that logs and traces join up.
type LogHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h LogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return LogHandler{h.Handler.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h LogHandler) WithGroup(name string) slog.Handler { return LogHandler{h.Handler.WithGroup(name)} }
