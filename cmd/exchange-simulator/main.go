// Command exchange-simulator serves the probe endpoints of every supported
// exchange on loopback, for the demo and for trying the operator without
// real keys. Keys are registered with a JSON file (--keys) or through
// POST /admin/keys; see internal/exchange/simulator.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18080", "Loopback address to listen on.")
	keys := flag.String("keys", "", "JSON file with a list of keys to register (fields as in simulator.Key).")
	flag.Parse()

	host, _, err := net.SplitHostPort(*addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		// The admin API has no authentication: it must not be reachable
		// from anywhere but this machine.
		log.Fatalf("--listen must be a loopback address such as 127.0.0.1:18080, got %q", *addr)
	}
	sim := simulator.New()
	if *keys != "" {
		b, err := os.ReadFile(*keys)
		if err != nil {
			log.Fatal(err)
		}
		var list []simulator.Key
		if err := json.Unmarshal(b, &list); err != nil {
			log.Fatalf("%s: %v", *keys, err)
		}
		for _, k := range list {
			if !exchange.Supported(k.Exchange) {
				log.Fatalf("%s: unsupported exchange %q", *keys, k.Exchange)
			}
			sim.AddKey(k)
		}
		log.Printf("registered %d keys", len(list))
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("exchange simulator on http://%s (base URL per exchange: http://%s/<exchange>)\n", l.Addr(), l.Addr())
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.Serve(l))
}
