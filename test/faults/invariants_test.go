//go:build faults

package faults

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// The invariants that must hold after any fault, checked after every scenario.
const (
	invEnforce       = "Enforce: a target Secret only ever holds a key that verified and complied"
	invRolls         = "each restart target rolls exactly once per accepted key"
	invHistory       = "status.history records each accepted key once (Accepted) and each refused key at most once (Rejected, exactly once if it stayed)"
	invLastRotation  = "status.rotation.lastRotationTime is recorded exactly once per rotation"
	invKeyRotated    = "the KeyRotated Event is recorded exactly once per rotation"
	invReminder      = "a webhook reminder is delivered exactly once per transition"
	invNoKeyMaterial = "no key material (raw, base64, JSON-escaped, or in a logged hex dump) in manager logs, Events, ExchangeAPIKeys, workloads or reminders"
)

// violations collects evidence per invariant.
type violations map[string][]string

func (v violations) add(inv, format string, args ...any) {
	v[inv] = append(v[inv], fmt.Sprintf(format, args...))
}

// checkInvariants is the one checker every scenario ends with. It reads what
// the recorder saw during the scenario and the final state, and reports
// every broken invariant with its evidence (which key, what was expected,
// what happened); the full list goes to invariants.txt in the scenario's
// artifact directory.
func checkInvariants(t *testing.T, sc *scenario) {
	t.Helper()
	ctx := context.Background()
	var keys keyopsv1.ExchangeAPIKeyList
	if err := cl.c.List(ctx, &keys, client.InNamespace(sc.ns)); err != nil {
		t.Fatal(err)
	}
	var evs eventsv1.EventList
	if err := cl.c.List(ctx, &evs, client.InNamespace(sc.ns)); err != nil {
		t.Fatal(err)
	}
	var deps appsv1.DeploymentList
	if err := cl.c.List(ctx, &deps, client.InNamespace(sc.ns)); err != nil {
		t.Fatal(err)
	}
	v := violations{}
	sc.rec.mu.Lock()
	defer sc.rec.mu.Unlock()
	sc.checkEnforce(v)
	sc.checkRolls(v, deps.Items)
	sc.checkBookkeeping(v, keys.Items, evs.Items)
	sc.checkReminders(v)
	sc.checkLeaks(v, evs.Items)

	var full strings.Builder
	for _, inv := range []string{invEnforce, invRolls, invHistory, invLastRotation, invKeyRotated, invReminder, invNoKeyMaterial} {
		ev := v[inv]
		if len(ev) == 0 {
			continue
		}
		fmt.Fprintf(&full, "BROKEN: %s (%d)\n  %s\n", inv, len(ev), strings.Join(ev, "\n  "))
		t.Errorf("invariant broken: %s: %d violation(s), e.g.\n    %s", inv, len(ev), strings.Join(first(ev, 6), "\n    "))
	}
	if sc.rec.relists > 0 {
		t.Logf("note: the recorder re-listed %d time(s); versions between could be missing", sc.rec.relists)
	}
	_ = os.WriteFile(filepath.Join(sc.dir, "invariants.txt"), []byte(full.String()), 0o644)
}

// checkEnforce: every version of every target Secret seen during the
// scenario holds a key the simulator knows as valid and compliant, and one
// that was this ExchangeAPIKey's own.
func (sc *scenario) checkEnforce(v violations) {
	seen := map[string]bool{}
	for _, s := range sc.rec.secrets {
		p := sc.fleet.byName(s.Name)
		if p == nil {
			continue // a source Secret or the webhook Secret
		}
		ak := string(s.Data["apiKey"])
		if seen[s.Name+"/"+ak] {
			continue
		}
		seen[s.Name+"/"+ak] = true
		c, ok := sc.fleet.approved[ak]
		switch {
		case !ok && p.bad != nil && ak == p.bad.APIKey:
			v.add(invEnforce, "target %s held the withdraw-enabled key %s, which the policy refuses (resourceVersion %s)", s.Name, keyid.Mask(ak), s.ResourceVersion)
		case !ok:
			v.add(invEnforce, "target %s held a key (%s) that was never registered valid and compliant (resourceVersion %s)", s.Name, keyid.Mask(ak), s.ResourceVersion)
		case ak != p.initial.APIKey && ak != p.final.APIKey:
			v.add(invEnforce, "target %s held key %s, which belongs to another ExchangeAPIKey", s.Name, keyid.Mask(ak))
		case string(s.Data["apiSecret"]) != c.APISecret || string(s.Data["passphrase"]) != c.Passphrase:
			v.add(invEnforce, "target %s held key %s with a secret or passphrase not its own (resourceVersion %s)", s.Name, keyid.Mask(ak), s.ResourceVersion)
		}
	}
}

// checkRolls counts rolls as changes of a Deployment's pod template
// between consecutive versions the recorder saw (generation would count
// annotation changes too: Deployments bump it for those). A Deployment of
// one key rolls once per key it accepted: the initial key, and the new one
// when the rotation was accepted. A Deployment shared by two keys rolls at
// least once and at most twice per phase (two accepted keys: once each, or
// once for both if they land together).
func (sc *scenario) checkRolls(v violations, deps []appsv1.Deployment) {
	owners := map[string]*plannedKey{}
	for _, p := range sc.fleet.keys {
		if p.own != "" {
			owners[p.own] = p
		}
	}
	rollsBefore, rollsAfter, history := sc.templateChanges()
	for _, d := range deps {
		if p := owners[d.Name]; p != nil {
			want := 1
			accepted := []string{keyid.Mask(p.initial.APIKey)}
			if sc.fleet.rotated && p.finalGood {
				want++
				accepted = append(accepted, keyid.Mask(p.final.APIKey))
			}
			if got := rollsBefore[d.Name] + rollsAfter[d.Name]; got != want {
				v.add(invRolls, "Deployment %s (restarted by %s only) rolled %d time(s), want %d (accepted keys %v); pod templates seen: %s", d.Name, p.name, got, want, accepted, history[d.Name])
			}
			continue
		}
		ps := sc.fleet.sharedBy[d.Name]
		if len(ps) == 0 {
			continue
		}
		names := []string{}
		for _, p := range ps {
			names = append(names, p.name)
		}
		if got := rollsBefore[d.Name]; got < 1 || got > len(ps) {
			v.add(invRolls, "Deployment %s (shared by %v, each accepting its first key) rolled %d time(s) before the rotation, want 1..%d; pod templates seen: %s", d.Name, names, got, len(ps), history[d.Name])
		}
		if sc.fleet.rotated {
			accepted := 0
			for _, p := range ps {
				accepted += p.rotations()
			}
			lo := 1
			if accepted == 0 {
				lo = 0
			}
			if got := rollsAfter[d.Name]; got < lo || got > accepted {
				v.add(invRolls, "Deployment %s (shared by %v, %d accepted rotation(s)) rolled %d time(s) during the rotation, want %d..%d; pod templates seen: %s", d.Name, names, accepted, got, lo, accepted, history[d.Name])
			}
		}
	}
}

// templateChanges counts, per Deployment, pod template changes before and
// after depMark, and describes the templates seen (the operator's
// annotations, restartedAt included).
func (sc *scenario) templateChanges() (before, after map[string]int, history map[string]string) {
	before, after, history = map[string]int{}, map[string]int{}, map[string]string{}
	last := map[string]*corev1.PodTemplateSpec{}
	for i, d := range sc.rec.deployments {
		prev := last[d.Name]
		last[d.Name] = &d.Spec.Template
		if prev != nil && equality.Semantic.DeepEqual(*prev, d.Spec.Template) {
			continue
		}
		if prev != nil {
			if i < sc.depMark {
				before[d.Name]++
			} else {
				after[d.Name]++
			}
		}
		var ann []string
		for _, k := range sortedKeys(d.Spec.Template.Annotations) {
			if strings.Contains(k, "keyops.io/") {
				val := d.Spec.Template.Annotations[k]
				if !strings.HasSuffix(k, "restartedAt") {
					val = keyid.Short(val)
				}
				ann = append(ann, strings.TrimPrefix(k, "exchange.keyops.io/")+"="+val)
			}
		}
		if history[d.Name] != "" {
			history[d.Name] += " -> "
		}
		history[d.Name] += "{" + strings.Join(ann, ",") + "}"
	}
	return before, after, history
}

// checkBookkeeping: history, lastRotationTime and the KeyRotated Event.
func (sc *scenario) checkBookkeeping(v violations, keys []keyopsv1.ExchangeAPIKey, evs []eventsv1.Event) {
	rotated := map[string]int{}
	for _, e := range evs {
		if e.Reason != "KeyRotated" {
			continue
		}
		n := 1
		if e.Series != nil {
			n = int(e.Series.Count)
		} else if e.DeprecatedCount > 0 {
			n = int(e.DeprecatedCount)
		}
		rotated[e.Regarding.Name] += n
	}
	lastRotation := map[string]map[string]bool{}
	for _, k := range sc.rec.keys {
		if k.Status.Rotation == nil || k.Status.Rotation.LastRotationTime == nil {
			continue
		}
		if lastRotation[k.Name] == nil {
			lastRotation[k.Name] = map[string]bool{}
		}
		lastRotation[k.Name][k.Status.Rotation.LastRotationTime.UTC().Format(time.RFC3339)] = true
	}
	final := map[string]*keyopsv1.ExchangeAPIKey{}
	for i := range keys {
		final[keys[i].Name] = &keys[i]
	}
	for _, p := range sc.fleet.keys {
		k := final[p.name]
		if k == nil {
			continue
		}
		want := 0
		if sc.fleet.rotated {
			want = p.rotations()
		}
		count := func(c exchange.Credentials, outcome string) int {
			n := 0
			for _, h := range k.Status.History {
				if h.Fingerprint == keyid.Fingerprint(c.APIKey) && h.Outcome == outcome {
					n++
				}
			}
			return n
		}
		if n := count(p.initial, "Accepted"); n != 1 {
			v.add(invHistory, "%s: history has %d Accepted entries for its initial key %s, want 1; history: %s", p.name, n, keyid.Mask(p.initial.APIKey), historyString(k))
		}
		if sc.fleet.rotated && p.finalGood {
			if n := count(p.final, "Accepted"); n != 1 {
				v.add(invHistory, "%s: history has %d Accepted entries for its new key %s, want 1; history: %s", p.name, n, keyid.Mask(p.final.APIKey), historyString(k))
			}
		}
		if sc.fleet.rotated && p.bad != nil {
			acc, rej := count(*p.bad, "Accepted"), count(*p.bad, "Rejected")
			switch {
			case acc != 0:
				v.add(invHistory, "%s: history has %d Accepted entries for the withdraw-enabled key %s, want 0; history: %s", p.name, acc, keyid.Mask(p.bad.APIKey), historyString(k))
			case !p.finalGood && rej != 1:
				v.add(invHistory, "%s: history has %d Rejected entries for the withdraw-enabled key %s it still holds in its source, want 1; history: %s", p.name, rej, keyid.Mask(p.bad.APIKey), historyString(k))
			case rej > 1:
				v.add(invHistory, "%s: history has %d Rejected entries for the withdraw-enabled key %s, want at most 1; history: %s", p.name, rej, keyid.Mask(p.bad.APIKey), historyString(k))
			}
		}
		if len(k.Status.History) > 10 {
			v.add(invHistory, "%s: history has %d entries, more than 10", p.name, len(k.Status.History))
		}
		distinct := sortedKeys(lastRotation[p.name])
		finalSet := k.Status.Rotation != nil && k.Status.Rotation.LastRotationTime != nil
		if len(distinct) != want || finalSet != (want > 0) {
			v.add(invLastRotation, "%s: %d accepted rotation(s) (%s -> %s), lastRotationTime took %d distinct value(s) %v and is %s in the final status", p.name, want, keyid.Mask(p.initial.APIKey), keyid.Mask(sc.fleet.wantTarget(p).APIKey), len(distinct), distinct, map[bool]string{true: "set", false: "unset"}[finalSet])
		}
		if got := rotated[p.name]; got != want {
			v.add(invKeyRotated, "%s: %d KeyRotated Event(s), want %d (rotation %s -> %s)", p.name, got, want, keyid.Mask(p.initial.APIKey), keyid.Mask(sc.fleet.wantTarget(p).APIKey))
		}
	}
}

func historyString(k *keyopsv1.ExchangeAPIKey) string {
	var out []string
	for _, h := range k.Status.History {
		o := h.Outcome
		if o == "" {
			o = "undecided"
		}
		if h.Reason != "" {
			o += "/" + h.Reason
		}
		out = append(out, h.KeyID+":"+o)
	}
	return "[" + strings.Join(out, " ") + "]"
}

// checkReminders: each key that sends reminders got exactly one per
// transition: RotationDueSoon for the initial key, and one for the new key
// once it is in use (both are 80 days old on the exchange). A reminder is
// counted once per idempotency ID (the ID is the receiver's defence against
// a resend after the manager died between the call and its record), and
// every delivery of one transition must carry one ID.
func (sc *scenario) checkReminders(v violations) {
	got := map[string]int{}
	ids := map[string]map[string]bool{}
	for _, m := range sc.hook.messages() {
		k := m.Name + " " + m.Reason + " " + m.KeyID
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		if m.ID == "" || !ids[k][m.ID] {
			got[k]++
		}
		ids[k][m.ID] = true
	}
	want := map[string]bool{}
	for _, p := range sc.fleet.keys {
		if !p.notify {
			continue
		}
		want[p.name+" "+keyopsv1.ReasonRotationDueSoon+" "+keyid.Mask(p.initial.APIKey)] = true
		if sc.fleet.rotated {
			want[p.name+" "+keyopsv1.ReasonRotationDueSoon+" "+keyid.Mask(p.targetKey().APIKey)] = true
		}
	}
	for _, k := range sortedKeys(want) {
		if got[k] != 1 {
			v.add(invReminder, "reminder %q delivered %d time(s), want 1", k, got[k])
		}
	}
	for _, k := range sortedKeys(got) {
		if !want[k] {
			v.add(invReminder, "unexpected reminder %q delivered %d time(s)", k, got[k])
		}
	}
}

// needle is one form of one piece of key material.
type needle struct {
	value string
	what  string // e.g. "k012 new key's API secret (base64)"
}

func (sc *scenario) needles() []needle {
	var out []needle
	add := func(owner, which, field, value string) {
		if value == "" {
			return
		}
		forms := map[string]string{
			"raw":        value,
			"base64":     base64.StdEncoding.EncodeToString([]byte(value)),
			"base64url":  base64.URLEncoding.EncodeToString([]byte(value)),
			"base64 raw": base64.RawStdEncoding.EncodeToString([]byte(value)),
		}
		if j, _ := json.Marshal(value); string(j[1:len(j)-1]) != value {
			forms["JSON-escaped"] = string(j[1 : len(j)-1])
		}
		for form, s := range forms {
			out = append(out, needle{value: s, what: fmt.Sprintf("%s %s key's %s (%s)", owner, which, field, form)})
		}
	}
	for _, p := range sc.fleet.keys {
		creds := map[string]exchange.Credentials{"initial": p.initial, "final": p.final}
		if p.bad != nil {
			creds["withdraw-enabled"] = *p.bad
		}
		for which, c := range creds {
			add(p.name, which, "API key", c.APIKey)
			add(p.name, which, "API secret", c.APISecret)
			add(p.name, which, "passphrase", c.Passphrase)
		}
	}
	return out
}

// checkLeaks searches every manager log, every Event, every ExchangeAPIKey
// and Deployment version seen, and every reminder body for every form of
// every key made for the scenario. Evidence names the key and the place,
// never the value.
func (sc *scenario) checkLeaks(v violations, evs []eventsv1.Event) {
	ns := sc.needles()
	pairs := make([]string, 0, 2*len(ns))
	for i, n := range ns {
		pairs = append(pairs, n.value, fmt.Sprintf("\x00LEAK%d\x00", i))
	}
	marker := strings.NewReplacer(pairs...)
	// scan reports, per line of text, which needles it contains.
	scan := func(where string, text []byte, numbered bool) {
		out := marker.Replace(string(text))
		if !strings.Contains(out, "\x00LEAK") {
			return
		}
		for ln, line := range strings.Split(out, "\n") {
			found := map[int]int{}
			for _, part := range strings.Split(line, "\x00LEAK")[1:] {
				var i int
				if _, err := fmt.Sscanf(part, "%d", &i); err == nil {
					found[i]++
				}
			}
			idx := make([]int, 0, len(found))
			for i := range found {
				idx = append(idx, i)
			}
			sort.Ints(idx)
			for _, i := range idx {
				at := where
				if numbered {
					at = fmt.Sprintf("%s line %d", where, ln+1)
				}
				v.add(invNoKeyMaterial, "%s contains %s, %d time(s)", at, ns[i].what, found[i])
			}
		}
	}
	for _, m := range sc.managers {
		log := m.log()
		scan("manager log "+filepath.Base(m.logPath), log, true)
		// client-go logs request and response bodies as hex dumps at -v=8
		// and above; the material sits in them as raw bytes.
		for ln, line := range bytes.Split(log, []byte("\n")) {
			if b := hexDumpBytes(line); len(b) > 0 {
				scan(fmt.Sprintf("manager log %s line %d (hex dump of a request or response body)", filepath.Base(m.logPath), ln+1), b, false)
			}
		}
	}
	for _, e := range evs {
		b, _ := json.Marshal(e)
		scan(fmt.Sprintf("Event %s (%s about %s)", e.Name, e.Reason, e.Regarding.Name), b, false)
	}
	for _, k := range sc.rec.keys {
		b, _ := json.Marshal(k)
		scan(fmt.Sprintf("ExchangeAPIKey %s resourceVersion %s", k.Name, k.ResourceVersion), b, false)
	}
	for _, d := range sc.rec.deployments {
		b, _ := json.Marshal(d)
		scan(fmt.Sprintf("Deployment %s resourceVersion %s", d.Name, d.ResourceVersion), b, false)
	}
	sc.hook.mu.Lock()
	bodies := append([][]byte(nil), sc.hook.body...)
	sc.hook.mu.Unlock()
	for i, b := range bodies {
		scan(fmt.Sprintf("reminder body %d", i+1), b, false)
	}
}

// hexDumpLine is one line of encoding/hex.Dump output ("00000010  65 74 12
// e8 ...  |et..|"), as client-go logs bodies.
var hexDumpLine = regexp.MustCompile(`[0-9a-f]{8}  ((?:[0-9a-f]{2} {1,2}){1,16}) *\|`)

// hexDumpBytes decodes the hex dumps in a log line (newlines in it are
// JSON-escaped), concatenated; bytes a dump line splits are joined again.
func hexDumpBytes(line []byte) []byte {
	var out []byte
	for _, m := range hexDumpLine.FindAllSubmatch(line, -1) {
		for _, f := range strings.Fields(string(m[1])) {
			b, err := hex.DecodeString(f)
			if err == nil {
				out = append(out, b...)
			}
		}
	}
	// Lines of the dump are separated by a newline: the scan is per line,
	// so the result must not contain one of its own.
	return bytes.ReplaceAll(out, []byte("\n"), []byte(" "))
}
