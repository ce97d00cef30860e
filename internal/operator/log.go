package operator

import "github.com/go-logr/logr"

// MaxLogVerbosity is the most verbose level the manager logs at, whatever
// --zap-log-level asks for. client-go logs with the logger of the request's
// context, which for every call a reconcile makes is the manager's: from
// V(8) it logs request and response bodies, Secrets included, so key
// material would reach the log (found by the suite's secret-leak scan).
// V(6) (URLs) and V(7) (headers, with credentials masked) stay available.
// Source: k8s.io/client-go rest/request.go logBody, transport/round_trippers.go.
const MaxLogVerbosity = 7

// capVerbosity drops every message more verbose than max.
func capVerbosity(l logr.Logger, max int) logr.Logger {
	if l.GetSink() == nil {
		return l
	}
	return logr.New(cappedSink{LogSink: l.GetSink(), max: max})
}

type cappedSink struct {
	logr.LogSink
	max int
}

func (s cappedSink) Enabled(level int) bool {
	return level <= s.max && s.LogSink.Enabled(level)
}

func (s cappedSink) Info(level int, msg string, kv ...any) {
	if level <= s.max {
		s.LogSink.Info(level, msg, kv...)
	}
}

func (s cappedSink) WithValues(kv ...any) logr.LogSink {
	return cappedSink{LogSink: s.LogSink.WithValues(kv...), max: s.max}
}

func (s cappedSink) WithName(name string) logr.LogSink {
	return cappedSink{LogSink: s.LogSink.WithName(name), max: s.max}
}

// WithCallDepth keeps caller reporting right through the wrapper.
func (s cappedSink) WithCallDepth(depth int) logr.LogSink {
	if d, ok := s.LogSink.(logr.CallDepthLogSink); ok {
		return cappedSink{LogSink: d.WithCallDepth(depth), max: s.max}
	}
	return s
}
