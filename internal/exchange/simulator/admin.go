package simulator

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// serveAdmin is the control API for the standalone binary (cmd/exchange-simulator),
// used by the demo and by people trying the operator without real keys:
//
//	POST /admin/keys                         body: Key          register a key
//	POST /admin/keys/<exchange>/<key>/state  body: {"state":..} revoke, deactivate
//	POST /admin/faults/<exchange>            body: Fault        inject a fault
//	DELETE /admin/faults                                        clear faults
//	GET  /admin/stats                                           request counters
//
// It binds to loopback only (the binary refuses other addresses), so it has
// no authentication of its own.
func (s *Simulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/admin/"), "/"), "/")
	switch {
	case r.Method == http.MethodPost && len(parts) == 1 && parts[0] == "keys":
		var k Key
		if err := json.NewDecoder(r.Body).Decode(&k); err != nil || k.APIKey == "" || !exchange.Supported(k.Exchange) {
			http.Error(w, "want a JSON key with a supported exchange and an apiKey", http.StatusBadRequest)
			return
		}
		s.AddKey(k)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && len(parts) == 4 && parts[0] == "keys" && parts[3] == "state":
		var body struct {
			State State `json:"state"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "want {\"state\": \"active|inactive|revoked\"}", http.StatusBadRequest)
			return
		}
		if !s.SetState(exchange.Name(parts[1]), parts[2], body.State) {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && len(parts) == 2 && parts[0] == "faults":
		var f Fault
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			http.Error(w, "want a JSON fault", http.StatusBadRequest)
			return
		}
		s.SetFault(exchange.Name(parts[1]), f)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete && len(parts) == 1 && parts[0] == "faults":
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "stats":
		s.mu.Lock()
		stats := map[string]any{"total": s.total, "byKey": s.byKey, "byPath": s.byPath}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, stats)
	default:
		http.NotFound(w, r)
	}
}
