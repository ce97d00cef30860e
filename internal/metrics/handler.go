package metrics

import (
	"compress/gzip"
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// Handler serves /metrics: inner (the registry's handler, which controller-
// runtime builds over registry) followed by the per-key families. In the
// text format, which Prometheus asks for unless it wants protobuf, those
// are written straight from the cache (writeKeysText); for protobuf the
// request is served from registry and c together, the collector's way.
func (c *KeyCollector) Handler(registry prometheus.Gatherer, inner http.Handler) http.Handler {
	keysReg := prometheus.NewRegistry()
	keysReg.MustRegister(c)
	both := promhttp.HandlerFor(prometheus.Gatherers{registry, keysReg}, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...).FormatType() != expfmt.TypeTextPlain {
			both.ServeHTTP(w, r)
			return
		}
		// inner writes identity into our (maybe compressing) writer, so
		// that the key families can follow in the same stream.
		plain := r.Clone(r.Context())
		plain.Header.Del("Accept-Encoding")
		tw := &textWriter{ResponseWriter: w, gzip: acceptsGzip(r.Header.Get("Accept-Encoding"))}
		inner.ServeHTTP(tw, plain)
		if tw.status == 0 {
			tw.WriteHeader(http.StatusOK)
		}
		if tw.status == http.StatusOK {
			ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			keys, err := c.Keys(ctx)
			cancel()
			if err == nil {
				_ = writeKeysText(tw, keys, c.now())
			}
		}
		tw.close()
	})
}

// textWriter gzips the body when the client accepts it and the answer is
// a 200; an error answer goes out as inner wrote it.
type textWriter struct {
	http.ResponseWriter
	gzip   bool
	status int
	gz     *gzip.Writer
}

func (t *textWriter) WriteHeader(code int) {
	if t.status != 0 {
		return
	}
	t.status = code
	if code == http.StatusOK && t.gzip {
		t.Header().Set("Content-Encoding", "gzip")
		t.Header().Add("Vary", "Accept-Encoding")
		t.gz = gzip.NewWriter(t.ResponseWriter)
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *textWriter) Write(p []byte) (int, error) {
	if t.status == 0 {
		t.WriteHeader(http.StatusOK)
	}
	if t.gz != nil {
		return t.gz.Write(p)
	}
	return t.ResponseWriter.Write(p)
}

func (t *textWriter) close() {
	if t.gz != nil {
		_ = t.gz.Close()
	}
}

// acceptsGzip reads an Accept-Encoding header: gzip listed without q=0.
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(name) != "gzip" {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
